"""``pzeo adduser INI NAME``, ``pzeo deluser INI NAME``, ``pzeo users INI``:
the ready app's users, kept in the primary database beside the app root.

``adduser`` reads the password from stdin: asked twice, without echo, on
a terminal; the first line otherwise (``echo "$PW" | pzeo adduser ...``).
Adding a name that exists sets its password and role. Works while the
app runs: over ZEO every process sees the change at its next request.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any, TextIO

from ..app.users import (
    DEFAULT_ROLE,
    ROLES,
    check_name,
    check_password,
    find_users,
    users_for_change,
)
from ..databases import Databases
from ..root import bootstrap
from ..settings import ZeostoreSettings
from . import CommandError, add_ini, load_settings

ORDER = 60


def register(subparsers) -> None:
    add = subparsers.add_parser(
        'adduser',
        help='add a user of the ready app (or set their password)',
        description='Add a user who may log in to the ready app, or set '
        'the password and role of one who exists. The password is read '
        'from stdin (asked twice without echo on a terminal). These '
        'users are the ready app\'s (use = egg:pyramid_zeostore): an app '
        'of your own keeps its own security.',
    )
    add_ini(add)
    add.add_argument('name', metavar='NAME')
    add.add_argument(
        '--role', choices=list(ROLES), default=DEFAULT_ROLE,
        help='viewer: read; editor: read and write; manager: also manage '
        f'(default: {DEFAULT_ROLE})',
    )
    add.set_defaults(func=run_add)
    delete = subparsers.add_parser(
        'deluser', help='remove a user of the ready app',
        description='Remove a user; their sessions end at once.',
    )
    add_ini(delete)
    delete.add_argument('name', metavar='NAME')
    delete.set_defaults(func=run_delete)
    listing = subparsers.add_parser(
        'users', help='list the users of the ready app',
        description='The users, their roles and when they were added.',
    )
    add_ini(listing)
    listing.set_defaults(func=run_list)


def read_password(stream: TextIO | None = None) -> str:
    """The new password: from a terminal twice without echo, else the
    first line of ``stream``."""
    stream = stream or sys.stdin
    if stream.isatty():
        first = getpass.getpass('Password: ')
        if getpass.getpass('Password again: ') != first:
            raise CommandError('the passwords differ; nothing was changed')
        return first
    return stream.readline().rstrip('\r\n')


def _settings(args: argparse.Namespace) -> ZeostoreSettings:
    """The ini's settings, which must configure a database."""
    settings = load_settings(args)
    if settings.primary is None:
        raise CommandError('the ini configures no database (zodb_uri)', 2)
    return settings


def _change(
    args: argparse.Namespace, change: Any,
    settings: ZeostoreSettings | None = None,
) -> Any:
    """Run ``change(zodb_root)`` in a transaction of its own (retried on
    conflicts) on the ini's primary database; return what it returned."""
    settings = settings or _settings(args)
    databases = Databases(
        settings.databases[:1], settings.connect_timeout,
        settings.reply_timeout,
    )
    found = []
    try:
        bootstrap(databases.get(''), lambda root: found.append(change(root)))
    finally:
        databases.close()
    return found[-1]


def run_add(args: argparse.Namespace) -> int:
    # What can be wrong without the password is said before asking it.
    settings = _settings(args)
    try:
        check_name(args.name)
        password = read_password()
        check_password(password)
    except ValueError as e:
        raise CommandError(str(e), 2) from None
    verb = _change(
        args, lambda root: _add(root, args.name, password, args.role),
        settings,
    )
    print(f'{verb} user {args.name!r} ({args.role})')
    return 0


def _add(root: Any, name: str, password: str, role: str) -> str:
    users = users_for_change(root)
    verb = 'changed' if users.get(name) is not None else 'added'
    users.add(name, password, role)
    return verb


def run_delete(args: argparse.Namespace) -> int:
    def remove(root: Any) -> bool:
        users = find_users(root)
        if users is None or users.get(args.name) is None:
            return False
        users.remove(args.name)
        return True

    if not _change(args, remove):
        raise CommandError(f'no user {args.name!r}', 1)
    print(f'removed user {args.name!r}')
    return 0


def run_list(args: argparse.Namespace) -> int:
    rows = _change(args, lambda root: [
        (u.name, u.role, u.created) for u in (find_users(root) or ())
    ])
    if not rows:
        print('no users: the ready app is read-only '
              f'(add one: pzeo adduser {args.config_uri} NAME)')
    for name, role, created in rows:
        when = time.strftime('%Y-%m-%d %H:%M', time.localtime(created))
        print(f'{name}\t{role}\tadded {when}')
    return 0
