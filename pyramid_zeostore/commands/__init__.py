"""The subcommands of ``pzeo`` (see :mod:`pyramid_zeostore.cli`) and what
they share: reading the ini, finding the ZEO server's zeo.conf, picking
databases, showing sizes, keeping the logs quiet where the command
prints the reason itself."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from typing import Any, Callable, Iterable, Iterator, TypeVar

from pyramid.exceptions import (
    ConfigurationError,
    ConfigurationExecutionError,
)
from pyramid.paster import get_appsettings

from .. import exceptions
from ..app.settings import READERS as APP_READERS
from ..app.settings import parse_app_settings
from ..exceptions import CommandError, DatabaseUnavailable
from ..progress import Progress
from ..settings import (
    DatabaseSpec,
    ZeostoreSettings,
    check_dotted,
    check_keys,
    known_keys,
    parse_settings,
)

__all__ = [
    'CommandError', 'add_ini', 'add_quiet', 'add_zeo_conf', 'app_settings',
    'human', 'load_app', 'load_settings', 'unwrap', 'progress', 'quiet_logger',
    'select',
    'split_config_uri', 'zeo_conf_path',
]


def add_ini(parser: argparse.ArgumentParser) -> None:
    """The ``INI`` argument and ``--app-name`` every command takes."""
    parser.add_argument(
        'config_uri', metavar='INI',
        help='the app\'s ini file (e.g. development.ini); '
        'INI#name picks an [app:name] section',
    )
    parser.add_argument(
        '--app-name', default=None, metavar='NAME',
        help='the [app:NAME] section to read (default: main)',
    )


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress (a bar on a terminal, a line every
    ``PZEO_PROGRESS_INTERVAL`` seconds in a pipe) for long work."""
    parser.add_argument(
        '-q', '--quiet', action='store_true',
        help='show no progress (default: a bar on a terminal, a line '
        'every 10 s in a pipe or log)',
    )


def progress(
    args: argparse.Namespace, desc: str, total: int | None = None,
    unit: str = 'records',
) -> Progress:
    """The progress of a command's long work, on standard error; off with
    ``--quiet`` (see :mod:`pyramid_zeostore.progress`)."""
    quiet = getattr(args, 'quiet', False)
    return Progress(desc, total, unit, mode='off' if quiet else 'auto')


def split_config_uri(args: argparse.Namespace) -> tuple[str, str]:
    path, _, section = args.config_uri.partition('#')
    section = args.app_name or section or 'main'
    if not os.path.isfile(path):
        raise CommandError(f'no such ini file: {path}', 2)
    return path, section


def app_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The raw settings of the ini's app section (no app is built)."""
    path, section = split_config_uri(args)

    def read() -> dict[str, Any]:
        try:
            return dict(get_appsettings(path, section))
        except LookupError as e:  # no such section
            raise CommandError(f'{path}: {e}', 2) from None

    # Reading the settings imports the app's package (``use =``).
    return load_app(path, section, read)


T = TypeVar('T')


def load_app(path: str, section: str, load: Callable[[], T]) -> T:
    """``load()`` the ini's app (``get_app``, ``bootstrap``): an app that
    cannot be imported or made is one line naming the ini and the error
    (status 2), not a traceback; a configuration error stays one (taken
    out of Pyramid's wrapper when an action raised it), and a database
    that does not answer is :class:`DatabaseUnavailable` (status 1). The
    startup warnings meant for a web server's log are kept quiet."""
    try:
        with quiet_logger('pyramid_zeostore.app'):
            return load()
    except ConfigurationExecutionError as e:
        raise unwrap(e) from None
    except (ConfigurationError, CommandError, DatabaseUnavailable):
        raise
    except Exception as e:  # the app's own code, an import, ...
        raise CommandError(
            f'cannot load [app:{section}] of {path}: {type(e).__name__}: '
            f'{e} (pserve {path} shows the traceback)', 2,
        ) from None


def unwrap(error: BaseException) -> BaseException:
    """What an action raised, if it is a configuration error or a
    database that did not answer, out of Pyramid's wrapper."""
    return exceptions.unwrap(
        error, (ConfigurationError, DatabaseUnavailable)
    )


def load_settings(args: argparse.Namespace) -> ZeostoreSettings:
    """The ini's pyramid_zeostore settings, parsed and validated as the
    app does at startup: an unknown ``zeostore.`` key, a dotted name that
    does not import, a bad ready-app setting are refused here too."""
    raw = app_settings(args)
    parsed = parse_settings(raw)
    check_keys(raw, known_keys() | {key for key, _, _ in APP_READERS})
    check_dotted(raw)
    parse_app_settings(raw)
    return parsed


def zeo_conf_path(
    args: argparse.Namespace, settings: ZeostoreSettings
) -> str:
    """The zeo.conf: ``--zeo-conf``, else ``zeostore.zeo_conf``."""
    path = getattr(args, 'zeo_conf', None) or settings.zeo_conf
    if not path:
        raise CommandError(
            'no zeo.conf: set zeostore.zeo_conf in the ini or pass '
            '--zeo-conf PATH', 2,
        )
    if not os.path.isfile(path):
        raise CommandError(f'no such zeo.conf: {path}', 2)
    return path


def add_zeo_conf(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--zeo-conf', metavar='PATH',
        help='the ZEO server\'s zeo.conf (default: zeostore.zeo_conf '
        'from the ini)',
    )


def select(
    specs: Iterable[DatabaseSpec], name: str | None
) -> tuple[DatabaseSpec, ...]:
    """The specs named by ``--db`` (a name or a key); all if None.

    :raises CommandError: (status 2) no database has that name or key.
    """
    specs = tuple(specs)
    if name is None:
        return specs
    for spec in specs:
        if name in (spec.name, spec.key):
            return (spec,)
    known = ', '.join(repr(s.name) + f' ({s.key})' for s in specs)
    raise CommandError(f'no database {name!r} in the ini: {known}', 2)


def human(n: float) -> str:
    """``n`` bytes for people: 512 bytes, 1.5 KiB, 2.0 MiB, ..."""
    if n < 1024:
        return f'{n:.0f} bytes'
    for unit in ('KiB', 'MiB', 'GiB'):
        n /= 1024
        if n < 1024 or unit == 'GiB':
            break
    return f'{n:.1f} {unit}'


@contextlib.contextmanager
def quiet_logger(
    name: str = 'pyramid_zeostore.databases', level: int = logging.ERROR
) -> Iterator[None]:
    """Log only ``level`` and above on logger ``name`` meanwhile: the
    command prints the reason itself (by default, why a server is down,
    which the databases' warning would say twice)."""
    logger = logging.getLogger(name)

    def loud(record: logging.LogRecord) -> bool:
        return record.levelno >= level

    # A filter, not a level: the ini's logging configuration, read by
    # some commands meanwhile, resets the levels of existing loggers.
    logger.addFilter(loud)
    try:
        yield
    finally:
        logger.removeFilter(loud)
