"""The subcommands of ``pzeo`` (see :mod:`pyramid_zeostore.cli`) and what
they share: reading the ini, finding the ZEO server's zeo.conf."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..settings import ZeostoreSettings, parse_settings


class CommandError(Exception):
    """A failure to report in one line, with an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


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


def split_config_uri(args: argparse.Namespace) -> tuple[str, str]:
    path, _, section = args.config_uri.partition('#')
    section = args.app_name or section or 'main'
    if not os.path.isfile(path):
        raise CommandError(f'no such ini file: {path}', 2)
    return path, section


def app_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The raw settings of the ini's app section (no app is built)."""
    from pyramid.paster import get_appsettings

    path, section = split_config_uri(args)
    try:
        return dict(get_appsettings(path, section))
    except LookupError as e:
        raise CommandError(f'{path}: {e}', 2) from None


def load_settings(args: argparse.Namespace) -> ZeostoreSettings:
    """The ini's pyramid_zeostore settings, parsed and validated."""
    return parse_settings(app_settings(args))


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
