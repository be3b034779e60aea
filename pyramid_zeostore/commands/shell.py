"""``pzeo shell INI`` and ``pzeo run INI script.py``: the live database
from statements and scripts, with exit statuses that tell.

Both see what ``pshell`` gives with ``pyramid_zeostore.pshell.setup``:
``root``, ``zodb_root``, ``conn``, ``db``, ``tm``, ``commit()``,
``abort()``, plus ``app``, ``registry``, ``request``, ``settings``. Only
what is ``commit()``-ed is saved. A statement or script that raises ends
the command with the traceback on stderr and exit status 1 (plain pshell
prints it and exits 0); ``sys.exit(n)`` in a script exits with ``n``.
"""

from __future__ import annotations

import argparse
import code
import contextlib
import runpy
import sys
import traceback
from typing import Any, Iterator

from pyramid.paster import bootstrap, setup_logging

from .. import compat
from ..connection import get_databases
from ..pshell import setup
from . import CommandError, add_ini, load_app, split_config_uri

ORDER = 30


def register(subparsers) -> None:
    shell = subparsers.add_parser(
        'shell',
        help='statements on the live database (-c, stdin, or interactive)',
        description='Run Python statements with root, zodb_root, conn, db, '
        'tm, commit() and abort(): from -c, else from stdin when it is '
        'not a terminal, else interactively. Exit status 1 if a '
        'statement raises.',
    )
    add_ini(shell)
    shell.add_argument(
        '-c', dest='code', metavar='CODE', help='the statements to run'
    )
    shell.set_defaults(func=run_shell)

    script = subparsers.add_parser(
        'run',
        help='run a Python script on the live database',
        description='Run SCRIPT as __main__ with root, zodb_root, conn, '
        'db, tm, commit() and abort() as globals and sys.argv = '
        '[SCRIPT, ARGS...]. Exit status 1 if it raises.',
    )
    add_ini(script)
    script.add_argument('script', metavar='SCRIPT')
    script.add_argument('script_args', nargs=argparse.REMAINDER,
                        metavar='ARGS')
    script.set_defaults(func=run_script)


@contextlib.contextmanager
def session(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The pshell environment of the ini's app, closed at exit."""
    path, section = split_config_uri(args)
    setup_logging(path)
    env = load_app(path, section, lambda: bootstrap(f'{path}#{section}'))
    try:
        filling = setup(env)
        next(filling)
        conn = env['conn']
        try:
            env['settings'] = env['registry'].settings
            yield env
        finally:
            dropped = len(compat.changed_objects(conn))
            filling.close()
            if dropped:  # as pshell: only commit() saves; say so
                print(f'pzeo {args.command}: {dropped} changed objects '
                      'were not committed, and are dropped (commit() '
                      'saves them)', file=sys.stderr)
    finally:
        env['closer']()
        get_databases(env['registry']).close()


def _execute(code: str, filename: str, namespace: dict) -> int:
    try:
        exec(compile(code, filename, 'exec'), namespace)
    except SystemExit as e:
        return _exit_status(e)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _exit_status(e: SystemExit) -> int:
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def run_shell(args: argparse.Namespace) -> int:
    if args.code is None and sys.stdin.isatty():
        with session(args) as env:
            code.interact(
                banner='pzeo shell: root, zodb_root, conn, db, tm, '
                'commit(), abort(); only what you commit() is saved',
                local=env,
            )
        return 0
    source = args.code if args.code is not None else sys.stdin.read()
    with session(args) as env:
        return _execute(source, '<pzeo shell>', env)


def run_script(args: argparse.Namespace) -> int:
    try:
        with open(args.script) as f:
            f.read(1)
    except OSError as e:
        raise CommandError(f'cannot read {args.script}: {e}', 2) from None
    with session(args) as env:
        argv = sys.argv
        sys.argv = [args.script, *args.script_args]
        try:
            runpy.run_path(args.script, init_globals=env,
                           run_name='__main__')
        except SystemExit as e:
            return _exit_status(e)
        except BaseException:
            traceback.print_exc()
            return 1
        finally:
            sys.argv = argv
    return 0
