"""``pzeo``: one command for the operations of a pyramid_zeostore app.

Every subcommand lives in a module of :mod:`pyramid_zeostore.commands`
with ``register(subparsers)``; it reads the app's ini (the ``[app:main]``
section unless ``--app-name`` says otherwise). Exit status: 0 done, 1 the
thing checked is not right (a database down, damage found, a statement
failed), 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Sequence

from pyramid.exceptions import ConfigurationError

from . import commands
from .commands import CommandError
from .exceptions import DatabaseUnavailable

ZEO_CLIENT = 'ZEO.asyncio.client'


def parser() -> argparse.ArgumentParser:
    """The ``pzeo`` argument parser, with every command module's
    subcommands (in each module's ``ORDER``)."""
    top = argparse.ArgumentParser(
        prog='pzeo',
        description='Operate the ZODB/ZEO databases of a pyramid_zeostore '
        'app: status, server start/stop, shell and scripts, and more.',
    )
    top.add_argument('--version', action='version', version=_version())
    subparsers = top.add_subparsers(
        dest='command', metavar='COMMAND', required=True
    )
    modules = [
        importlib.import_module(f'{commands.__name__}.{info.name}')
        for info in pkgutil.iter_modules(commands.__path__)
    ]
    modules.sort(key=lambda m: (getattr(m, 'ORDER', 100), m.__name__))
    for module in modules:
        module.register(subparsers)
    return top


def _version() -> str:
    try:
        return f'pzeo (pyramid_zeostore {version("pyramid_zeostore")})'
    except PackageNotFoundError:  # a bare checkout on sys.path
        return 'pzeo (pyramid_zeostore, not installed)'


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pzeo``; return the exit status."""
    args = parser().parse_args(argv)
    try:
        # What goes wrong is said once, below: not logged too (for a
        # server's log) by the databases or by ZEO's client, which adds a
        # traceback to a storage the server does not have. (Loading an
        # app takes errors out of Pyramid's wrapper: commands.load_app.)
        with commands.quiet_logger(level=logging.CRITICAL), \
                commands.quiet_logger(ZEO_CLIENT, logging.CRITICAL):
            return args.func(args) or 0
    except CommandError as e:
        print(f'pzeo {args.command}: {e}', file=sys.stderr)
        return e.status
    except DatabaseUnavailable as e:  # down, or hung past the bound
        print(f'pzeo {args.command}: {e}', file=sys.stderr)
        return 1
    except ConfigurationError as e:
        print(f'pzeo {args.command}: configuration error: {e}',
              file=sys.stderr)
        return 2


def run() -> None:  # the console script
    sys.exit(main())
