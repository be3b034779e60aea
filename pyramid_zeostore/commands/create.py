"""``pzeo create NAME``: a new project from the ``zeostore`` scaffold, or
(``--ready``) a folder to run the ready app in.

Runs the cookiecutter template shipped in the package
(``scaffold-templates/zeostore``, ``scaffolds/zeostore`` in the
repository) with cookiecutter as a library, without questions.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import re
import shutil
import sys
import unicodedata
from importlib.metadata import PackageNotFoundError, distribution, version

from . import CommandError

ORDER = 1

TEMPLATES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    'scaffold-templates',
)
#: A project of your own: package, views, tests (``scaffolds/zeostore``).
TEMPLATE = os.path.join(TEMPLATES, 'zeostore')
#: The ready app's folder: development.ini and zeo.conf, no package (the
#: repository's own two files, which a test keeps the same).
READY = os.path.join(TEMPLATES, 'ready')
BACKENDS = ('zeo', 'file', 'relstorage-sqlite')
#: Names a project's package must not take: it would shadow them.
TAKEN = frozenset({
    'pyramid', 'pyramid_zeostore', 'tests', 'test', 'transaction', 'ZODB',
    'ZEO', 'persistent', 'waitress',
})


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'create',
        help='a new project: a Pyramid app on pyramid_zeostore, with '
        'tests',
        description='Generate a complete app from the zeostore scaffold '
        '(a cookiecutter template): package with models, views and '
        'templates, development.ini (ZEO autostart), production.ini, '
        'zeo.conf, tests on the pyramid_zeostore pytest fixtures, '
        'README, Makefile. Needs cookiecutter: pip install '
        '"pyramid_zeostore[scaffold]".',
    )
    parser.add_argument(
        'name', metavar='NAME',
        help='the project name, e.g. "My Site"; its package (and folder) '
        'name is made from it (my_site) unless --package says otherwise',
    )
    parser.add_argument(
        '--backend', choices=BACKENDS, default='zeo',
        help='the database of development.ini and production.ini: a ZEO '
        'server (default), a FileStorage, or RelStorage on SQLite',
    )
    parser.add_argument(
        '--package', metavar='PKG',
        help='the Python package (and folder) name',
    )
    parser.add_argument(
        '--output-dir', '-o', metavar='DIR', default='.',
        help='where to create the project folder (default: here)',
    )
    parser.add_argument(
        '--ready', action='store_true',
        help='a folder to run the ready app (use = egg:pyramid_zeostore) '
        'in: development.ini (ZEO autostart), zeo.conf, var/; no package',
    )
    parser.set_defaults(func=run)


def package_name(name: str) -> str:
    """The package name the template makes of project name ``name``."""
    return re.sub(r'[ .-]', '_', name.strip().lower())


def check_names(name: str, package: str) -> None:
    """:raises CommandError: (status 2) a name that would not work."""
    if not name.strip() or any(c in name for c in '"\\\n\r'):
        raise CommandError(
            f'project name {name!r}: give a name without quotes, '
            'backslashes or line breaks', 2,
        )
    if package.isidentifier() and not package.isascii():
        raise CommandError(
            f'package name {package!r}: expected ASCII letters, digits and '
            'underscores only (a distribution and its imports are ASCII); '
            'pass --package, e.g. --package '
            f'{_ascii(package) or "mysite"}', 2,
        )
    if (
        not package.isidentifier()
        or keyword.iskeyword(package)
        or package != package.lower()
    ):
        raise CommandError(
            f'package name {package!r}: expected a lower-case Python '
            'identifier (letters, digits, underscores; not starting with a '
            'digit); pass --package', 2,
        )
    if package in sys.stdlib_module_names or package in TAKEN:
        raise CommandError(
            f'package name {package!r} is taken by an existing module; '
            'pass another --package', 2,
        )


def _ascii(package: str) -> str:
    """``package`` with its accents dropped, if that is a name."""
    plain = unicodedata.normalize('NFKD', package)
    plain = ''.join(c for c in plain if c.isascii())
    return plain if plain.isidentifier() else ''


def run(args: argparse.Namespace) -> int:
    package = args.package or package_name(args.name)
    if args.ready and args.backend != 'zeo':
        raise CommandError('--ready is the ZEO setup of the README; change '
                           'its zodb_uri line for another backend', 2)
    check_names(args.name, package)
    try:
        from cookiecutter.exceptions import CookiecutterException
        from cookiecutter.main import cookiecutter
    except ImportError:
        raise CommandError(
            'needs cookiecutter: pip install "pyramid_zeostore[scaffold]"',
            2,
        ) from None
    output_dir = os.path.abspath(args.output_dir)
    target = os.path.join(output_dir, package)
    if os.path.exists(target):
        raise CommandError(f'{target} exists already')
    context = {'project_name': args.name.strip(), 'repo_name': package}
    if not args.ready:
        context.update(backend=args.backend, __zeostore_version=_version())
    try:
        path = cookiecutter(
            READY if args.ready else TEMPLATE,
            no_input=True,
            extra_context=context,
            output_dir=output_dir,
            # The same project on every machine: no ~/.cookiecutterrc.
            default_config=True,
        )
    except CookiecutterException as e:
        raise CommandError(f'cookiecutter: {e}') from None
    shown = os.path.relpath(path)
    if shown.startswith(os.pardir):
        shown = path
    if args.ready:
        print(f'created {path} (the ready app, ZEO)')
        print(f'next: cd {shown} && {_script("pzeo")} adduser '
              f'development.ini admin && {_script("pserve")} '
              'development.ini')
        return 0
    print(f'created {path} ({args.backend} backend)')
    print(next_steps(shown))
    return 0


def _script(name: str) -> str:
    """How to run console script ``name`` of this environment: its name
    if that is what the PATH finds, else its path."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return name if shutil.which(name) == path else path


def next_steps(shown: str) -> str:
    """What to run next. The project's Makefile installs it, and with it
    pyramid_zeostore, into a new ``.venv`` from the package index; a
    pyramid_zeostore installed from a folder, a wheel file or a checkout
    is not there, so the project goes into this environment instead."""
    try:
        source = json.loads(
            distribution('pyramid_zeostore').read_text('direct_url.json')
            or 'null'
        )
    except PackageNotFoundError:  # a bare checkout on sys.path
        source = {'url': 'a checkout'}
    if not source:
        return f'next: cd {shown} && make test && make serve'
    if sys.prefix == sys.base_prefix:  # no virtualenv to reuse
        return (
            f'next: cd {shown} && {sys.executable} -m pip install -e '
            f"'.[testing]' && {sys.executable} -m pytest (pyramid_zeostore "
            f'is installed from {source.get("url")}, not a package index)'
        )
    return (
        f'next: cd {shown} && make test VENV={sys.prefix} && make serve '
        f'VENV={sys.prefix} (pyramid_zeostore is installed from '
        f'{source.get("url")}, not a package index: the project goes into '
        'the environment pzeo runs in)'
    )


def _version() -> str:
    """The lowest pyramid_zeostore the new project may use: this one."""
    try:
        return version('pyramid_zeostore')
    except PackageNotFoundError:  # a bare checkout on sys.path
        return '0.1.0.dev0'
