"""``pzeo start|stop INI``: the ZEO server of the ini's zeo.conf."""

from __future__ import annotations

import argparse
import os

from .. import zeoserver
from ..display import format_address
from ..settings import ZeostoreSettings
from . import CommandError, add_ini, add_zeo_conf, load_settings, zeo_conf_path

ORDER = 20


def register(subparsers) -> None:
    start = subparsers.add_parser(
        'start',
        help='start runzeo from the zeo.conf, detached (idempotent)',
        description='Start "runzeo -C zeo.conf" as a detached process '
        '(its pid file and a log in the socket\'s folder) unless a server '
        'already answers; wait until it answers. Stale pid files are '
        'removed.',
    )
    add_ini(start)
    add_zeo_conf(start)
    start.add_argument(
        '--timeout', type=float, default=None, metavar='SECONDS',
        help='wait this long for it to answer (default: '
        'zeostore.autostart_timeout)',
    )
    start.set_defaults(func=run_start)

    stop = subparsers.add_parser(
        'stop',
        help='stop the runzeo named by the pid file (idempotent)',
        description='Send SIGTERM to the runzeo named by the zeo.conf\'s '
        'pid file and wait until it is gone (SIGKILL after --timeout).',
    )
    add_ini(stop)
    add_zeo_conf(stop)
    stop.add_argument(
        '--timeout', type=float, default=10.0, metavar='SECONDS',
        help='seconds to wait after SIGTERM before SIGKILL (default 10)',
    )
    stop.set_defaults(func=run_stop)


def _key(args: argparse.Namespace) -> str:
    """Where the zeo.conf was named, for errors: option or setting."""
    return '--zeo-conf' if args.zeo_conf else 'zeostore.zeo_conf'


def _conf(
    args: argparse.Namespace, check: bool = False
) -> tuple[ZeostoreSettings, zeoserver.ZEOConf]:
    """The ini's settings and its zeo.conf, read (a configuration error
    naming :func:`_key` if runzeo cannot read it); with ``check``, the
    zeo.conf of a server the ini's ZEO databases connect to."""
    settings = load_settings(args)
    conf = zeoserver.load_zeo_conf(
        zeo_conf_path(args, settings),
        settings.databases if check else (),
        _key(args),
    )
    return settings, conf


def _clean_stale_pid_file(conf) -> bool:
    """Remove a pid file that names no live runzeo; True if removed."""
    if (
        conf.pid_file
        and os.path.exists(conf.pid_file)
        and zeoserver.server_pid(conf) is None
    ):
        os.remove(conf.pid_file)
        print(f'removed stale pid file {conf.pid_file}')
        return True
    return False


def run_start(args: argparse.Namespace) -> int:
    settings, conf = _conf(args, check=True)
    where = format_address(conf.address)
    if zeoserver.is_listening(conf.address):
        pid = zeoserver.server_pid(conf)
        running = f' (pid {pid})' if pid else ''
        print(f'already running at {where}{running}')
        return 0
    _clean_stale_pid_file(conf)
    timeout = (
        settings.autostart_timeout if args.timeout is None else args.timeout
    )
    try:
        pid = zeoserver.ensure_server(
            conf, timeout, settings.socket_mode, settings.socket_group,
            key=_key(args),  # its folder's error names it: status 2
        )
    except RuntimeError as e:  # it exited, or did not answer: status 1
        raise CommandError(str(e)) from None
    if pid is None:  # another process started it meanwhile
        print(f'already running at {where}')
    else:
        print(f'started runzeo -C {conf.path} (pid {pid}) at {where}; '
              f'log: {conf.log_file}')
    return 0


def run_stop(args: argparse.Namespace) -> int:
    _, conf = _conf(args)
    where = format_address(conf.address)
    pid = zeoserver.server_pid(conf)
    if pid is not None:
        zeoserver.stop_server(conf, args.timeout)
        print(f'stopped runzeo (pid {pid})')
        return 0
    _clean_stale_pid_file(conf)
    if zeoserver.is_listening(conf.address):
        raise CommandError(
            f'a server answers at {where}, but the pid file '
            f'{conf.pid_file} names no runzeo: not stopping it (was it '
            'started by something else, e.g. systemd?)'
        )
    print(f'not running (nothing answers at {where})')
    return 0
