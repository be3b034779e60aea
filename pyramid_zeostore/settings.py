"""Settings -> immutable specs. Every check and error message lives here.

Parsing opens nothing: URIs are *resolved* (zodburi turns them into a
storage factory and ``ZODB.DB`` keywords, which catches unknown schemes
and parameters early) but no storage is created until a process first
uses its databases.
"""

from __future__ import annotations

import grp
import math
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pyramid.settings import asbool

from .exceptions import ZeostoreConfigurationError as Bad
from .resolvers import URIParameterError, ZEOFactory, zeo_resolver

PRIMARY_KEYS = ('zodb_uri', 'zodbconn.uri')
#: zodburi schemes that RelStorage registers (when it is installed).
RELSTORAGE_SCHEMES = ('postgres', 'mysql', 'oracle', 'sqlite')
DEFAULT_APPMAKER = 'pyramid_zeostore.finder.default_appmaker'
TRUE_FALSE = 'expected true or false'


@dataclass(frozen=True)
class DatabaseSpec:
    """One database of the multi-database: its name, URI and opener.

    ``name`` is ``''`` for the primary database (as pyramid_zodbconn
    names it, so cross-database references written by it still resolve).
    """

    name: str
    key: str
    uri: str
    factory: Callable[..., Any] = field(repr=False, compare=False)
    dbkw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_zeo(self) -> bool:
        return isinstance(self.factory, ZEOFactory)

    @property
    def address(self) -> Any:
        """Where the server is, for messages; the URI if not ZEO."""
        return self.factory.address if self.is_zeo else self.uri


@dataclass(frozen=True)
class ZeostoreSettings:
    """Everything pyramid_zeostore reads from the settings, validated."""

    databases: tuple[DatabaseSpec, ...] = ()
    appmaker: Any = DEFAULT_APPMAKER  # dotted name or callable
    connect_timeout: float = 2.0
    autostart: bool = False
    zeo_conf: str | None = None
    autostart_timeout: float = 30.0
    retry_after: int = 5
    conflict_lock: bool = True
    lock_file: str | None = None
    retry_backoff: float = 0.005
    retry_backoff_max: float = 0.2
    retry_attempts: int = 3
    socket_mode: int = 0o600
    socket_group: int | None = None  # a gid
    check_on_startup: bool = True
    health_path: str | None = '/@@health'  # None: no health check
    metrics: bool = False
    fast_reads: bool = True
    read_your_writes: bool = True
    slow_request_log: float | None = None  # seconds; None: off
    prometheus_path: str | None = None  # None: no Prometheus endpoint

    @property
    def primary(self) -> DatabaseSpec | None:
        return self.databases[0] if self.databases else None


def _float(settings: Mapping, key: str, default: float, *, low=0.0) -> float:
    raw = settings.get(key)
    if raw is None or str(raw).strip() == '':
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < low:
        raise Bad(key, raw, f'expected a number of seconds >= {low:g}')
    return value


def _int(settings: Mapping, key: str, default: int, *, low: int) -> int:
    raw = settings.get(key)
    if raw is None or str(raw).strip() == '':
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise Bad(key, raw, f'expected a whole number >= {low}') from None
    if value < low:
        raise Bad(key, raw, f'expected a whole number >= {low}')
    return value


def _bool(settings: Mapping, key: str, default: bool) -> bool:
    raw = settings.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text not in ('true', 'yes', 'on', '1', 'false', 'no', 'off', '0'):
        raise Bad(key, raw, TRUE_FALSE)
    return asbool(text)


def _socket_group(settings: Mapping) -> int | None:
    key = 'zeostore.socket_group'
    raw = settings.get(key)
    if raw is None or str(raw).strip() == '':
        return None
    text = str(raw).strip()
    if text.isdigit():
        gid = int(text)
    else:
        try:
            gid = grp.getgrnam(text).gr_gid
        except KeyError:
            raise Bad(
                key, raw, 'expected the name or id of an existing group'
            ) from None
    if os.geteuid() != 0 and gid != os.getegid() and (
        gid not in os.getgroups()
    ):
        raise Bad(
            key,
            raw,
            'expected a group this user belongs to (see "id -Gn"), '
            'to which autostart can give the socket',
        )
    return gid


def _socket_mode(settings: Mapping, group: int | None) -> int:
    key = 'zeostore.socket_mode'
    raw = settings.get(key)
    if raw is None or str(raw).strip() == '':
        # Owner only, unless a group is named: then that group too.
        return 0o600 if group is None else 0o660
    if isinstance(raw, int) and not isinstance(raw, bool):
        mode = raw
    else:
        text = str(raw).strip().lower()
        text = text[2:] if text.startswith('0o') else text
        try:
            mode = int(text, 8) if text.isdigit() else -1
        except ValueError:  # 8 or 9
            mode = -1
    if not 0 <= mode <= 0o777 or mode & 0o007 or mode & 0o600 != 0o600:
        raise Bad(
            key,
            raw,
            'expected an octal mode such as 0600 or 0660: read and write '
            'for the owner, nothing for others',
        )
    return mode


def resolve(key: str, uri: str) -> tuple[Callable[..., Any], dict]:
    """Resolve ``uri`` with zodburi (``zeo://`` with our superset).

    Raises :class:`ConfigurationError` naming ``key`` for an unknown
    scheme, an unknown parameter or a value of the wrong kind.
    """
    import zodburi

    uri = uri.strip()
    if ':' not in uri:
        raise Bad(
            key,
            uri,
            'expected a database URI such as zeo:///path/to/zeo.sock, '
            'file:///path/to/Data.fs or memory://',
        )
    try:
        if uri.startswith('zeo://'):
            factory, raw = zeo_resolver(uri)
            return factory, zodburi._get_dbkw(raw)
        return zodburi.resolve_uri(uri)
    except zodburi.NoResolverForScheme:
        schemes = sorted(
            ep.name for ep in _entry_points('zodburi.resolvers')
        )
        scheme = uri.split(':', 1)[0].lower()
        if scheme in ('postgresql', 'pgsql'):
            raise Bad(
                key,
                _no_password(uri),
                'expected postgres://user:password@host:port/dbname: '
                "RelStorage's scheme for PostgreSQL is postgres://, not "
                f'{scheme}://',
            ) from None
        hint = ''
        if scheme in RELSTORAGE_SCHEMES:
            hint = (
                f'; {scheme}:// is RelStorage\'s: pip install '
                '"pyramid_zeostore[relstorage]"'
            )
        raise Bad(
            key,
            _no_password(uri),
            'expected a URI scheme a zodburi resolver provides '
            f'({", ".join(schemes)}){hint}',
        ) from None
    except zodburi.UnknownDatabaseKeywords as e:
        raise Bad(
            key,
            _no_password(uri),
            f'unknown URI parameter(s) {", ".join(sorted(e.kw))}',
        ) from None
    except URIParameterError as e:
        raise Bad(key, uri, str(e)) from None
    except Exception as e:  # ZConfig and the resolvers raise their own
        raise Bad(
            key, _no_password(uri), f'expected a valid database URI ({e})'
        ) from None


def _no_password(uri: str) -> str:
    """``uri`` with its password (RelStorage URIs have one) masked."""
    head, sep, tail = uri.partition('://')
    netloc = tail.split('/', 1)[0].split('?', 1)[0]
    if not sep or '@' not in netloc:
        return uri
    userinfo, host = netloc.rsplit('@', 1)
    if ':' not in userinfo:
        return uri
    user = userinfo.split(':', 1)[0]
    return f'{head}://{user}:***@{host}' + tail[len(netloc):]


def _entry_points(group: str):
    from importlib.metadata import entry_points

    return entry_points(group=group)


def _database_specs(settings: Mapping) -> tuple[DatabaseSpec, ...]:
    primary_key = None
    named: dict[str, tuple[str, str]] = {}
    for key, value in settings.items():
        for base in PRIMARY_KEYS:
            if key == base:
                if primary_key and settings[primary_key] != value:
                    raise Bad(
                        key,
                        value,
                        f'{primary_key} is set to {settings[primary_key]!r}'
                        f'; set only one of {" / ".join(PRIMARY_KEYS)}',
                    )
                primary_key = primary_key or key
            elif key.startswith(base + '.'):
                name = key[len(base) + 1:]
                if not name.isidentifier():
                    raise Bad(
                        key,
                        value,
                        'expected a database name of letters, digits and '
                        f'underscores after "{base}."',
                    )
                if name in named and named[name][1] != value:
                    raise Bad(
                        key,
                        value,
                        f'{named[name][0]} names that database already; '
                        'set it once',
                    )
                named.setdefault(name, (key, value))
    if primary_key is None:
        if named:
            first = sorted(named.values())[0]
            raise Bad(
                'zodb_uri',
                None,
                f'expected a primary database URI since {first[0]} names '
                'a secondary database; add zodb_uri = ...',
            )
        return ()
    specs = []
    for name, (key, uri) in [('', (primary_key, settings[primary_key]))] + [
        (n, named[n]) for n in sorted(named)
    ]:
        if not isinstance(uri, str) or not uri.strip():
            raise Bad(key, uri, 'expected a database URI, got nothing')
        factory, dbkw = resolve(key, uri)
        dbkw = dict(dbkw)
        dbkw['database_name'] = name
        specs.append(DatabaseSpec(name, key, uri.strip(), factory, dbkw))
    return tuple(specs)


def _lock_file(settings: Mapping, primary: DatabaseSpec | None) -> str:
    configured = settings.get('zeostore.lock_file')
    if configured:
        return str(configured)
    if primary is not None and primary.is_zeo:
        address = primary.factory.addresses[0]
        if isinstance(address, str):
            # Beside the socket: every process of this host that talks to
            # this server finds the same lock.
            return address + '.lock'
    tag = zlib.crc32((primary.uri if primary else '').encode())
    return os.path.join(tempfile.gettempdir(), f'pyramid_zeostore-{tag:x}')


def parse_settings(settings: Mapping[str, Any]) -> ZeostoreSettings:
    """Validate ``settings`` and return a :class:`ZeostoreSettings`.

    :raises pyramid.exceptions.ConfigurationError: naming the key, the
        value and what was expected.
    """
    databases = _database_specs(settings)
    autostart = _bool(settings, 'zeostore.autostart', False)
    zeo_conf = settings.get('zeostore.zeo_conf') or None
    if autostart and not zeo_conf:
        raise Bad(
            'zeostore.zeo_conf',
            zeo_conf,
            'expected the path of the zeo.conf that zeostore.autostart '
            'starts (e.g. %(here)s/zeo.conf)',
        )
    if autostart and not os.path.isfile(zeo_conf):
        raise Bad('zeostore.zeo_conf', zeo_conf, 'expected an existing file')
    appmaker = settings.get('zeostore.appmaker') or DEFAULT_APPMAKER
    if isinstance(appmaker, str):
        appmaker = appmaker.strip()
    backoff = _float(settings, 'zeostore.retry_backoff', 0.005)
    socket_group = _socket_group(settings)
    return ZeostoreSettings(
        databases=databases,
        appmaker=appmaker,
        connect_timeout=_float(settings, 'zeostore.connect_timeout', 2.0),
        autostart=autostart,
        zeo_conf=zeo_conf,
        autostart_timeout=_float(
            settings, 'zeostore.autostart_timeout', 30.0
        ),
        retry_after=_int(settings, 'zeostore.retry_after', 5, low=0),
        conflict_lock=_bool(settings, 'zeostore.conflict_lock', True),
        lock_file=_lock_file(settings, databases[0] if databases else None),
        retry_backoff=backoff,
        retry_backoff_max=max(
            backoff, _float(settings, 'zeostore.retry_backoff_max', 0.2)
        ),
        retry_attempts=_int(settings, 'retry.attempts', 3, low=1),
        socket_mode=_socket_mode(settings, socket_group),
        socket_group=socket_group,
        check_on_startup=_bool(settings, 'zeostore.check_on_startup', True),
        health_path=_path(settings, 'zeostore.health_path', '/@@health'),
        metrics=_bool(settings, 'zeostore.metrics', False),
        fast_reads=_bool(settings, 'zeostore.fast_reads', True),
        read_your_writes=_bool(
            settings, 'zeostore.read_your_writes', True
        ),
        slow_request_log=_slow(settings),
        prometheus_path=_path(settings, 'zeostore.prometheus_path', None),
    )


def _slow(settings: Mapping) -> float | None:
    raw = settings.get('zeostore.slow_request_log')
    if raw is None or str(raw).strip().lower() in ('', 'off', 'false'):
        return None
    return _float(settings, 'zeostore.slow_request_log', 0.0)


def _path(settings: Mapping, key: str, default: str | None) -> str | None:
    """A path setting (health check, Prometheus); 'off' (or empty) for none."""
    raw = settings.get(key)
    if raw is None:
        return default
    path = str(raw).strip()
    if path.lower() in ('', 'off', 'false', 'none'):
        return None
    if not path.startswith('/') or any(c.isspace() for c in path):
        raise Bad(
            key, raw,
            "expected a URL path starting with /, or 'off'",
        )
    return path
