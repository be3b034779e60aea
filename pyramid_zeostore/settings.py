"""Settings -> immutable specs. Every check and error message lives here.

Parsing opens nothing: URIs are *resolved* (zodburi turns them into a
storage factory and ``ZODB.DB`` keywords, which catches unknown schemes
and parameters early) but no storage is created until a process first
uses its databases.
"""

from __future__ import annotations

import difflib
import functools
import grp
import logging
import math
import os
import re
import tempfile
import zlib
from dataclasses import dataclass, field, fields
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl

import zodburi
from pyramid.path import DottedNameResolver
from pyramid.settings import asbool

from .display import format_address, mask_password
from .exceptions import URIParameterError
from .exceptions import ZeostoreConfigurationError as Bad
from .resolvers import DemoFactory, ZEOFactory, zeo_part, zeo_resolver

PRIMARY_KEYS = ('zodb_uri', 'zodbconn.uri')
#: zodburi schemes that RelStorage registers (when it is installed).
RELSTORAGE_SCHEMES = ('postgres', 'mysql', 'oracle', 'sqlite')
DEFAULT_APPMAKER = 'pyramid_zeostore.root.default_appmaker'
TRUE_FALSE = 'expected true or false'
#: the upper bound of ``zeostore.slow_request_log``: a day
MAX_SLOW_LOG = 86400.0
#: The largest user or group id (POSIX: 32 bits, the last one reserved).
MAX_ID = 2**32 - 2


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
    def zeo(self) -> ZEOFactory | None:
        """The ZEO client factory of this database, if it has one (also
        inside ``demo:(zeo://...)/(...)``)."""
        return zeo_part(self.factory)

    @property
    def is_zeo(self) -> bool:
        return self.zeo is not None

    @property
    def address(self) -> Any:
        """Where the server is, for messages; the URI (password masked)
        if not ZEO."""
        zeo = self.zeo
        return zeo.address if zeo is not None else mask_password(self.uri)

    @property
    def display_address(self) -> str:
        """:attr:`address` for people (see :mod:`.display`)."""
        return format_address(self.address)


@dataclass(frozen=True)
class ZeostoreSettings:
    """Everything pyramid_zeostore reads from the settings, validated.

    The defaults here are the only ones: :func:`parse_settings` takes
    every default from these fields. ``lock_file`` and ``socket_mode``
    are derived by the parser from other settings (beside the ZEO socket;
    0660 when a ``socket_group`` is named).
    """

    databases: tuple[DatabaseSpec, ...] = ()
    appmaker: Any = DEFAULT_APPMAKER  # dotted name or callable
    connect_timeout: float = 2.0
    #: seconds a ZEO server may take to answer one call (a load, a vote,
    #: a ping) before the connection is dropped
    reply_timeout: float = 10.0
    autostart: bool = False
    zeo_conf: str | None = None
    autostart_timeout: float = 30.0
    retry_after: int = 5
    conflict_lock: bool = True
    lock_file: str | None = None  # derived: see _lock_file()
    retry_backoff: float = 0.005
    retry_backoff_max: float = 0.2  # never below retry_backoff
    retry_attempts: int = 3
    socket_mode: int = 0o600  # 0660 when a socket_group is named
    socket_group: int | None = None  # a gid
    check_on_startup: bool = True
    #: ``zeostore.autoevolve``: run the pending evolve steps at startup
    autoevolve: bool = False
    #: ``zeostore.check_on_startup = strict``: an absent server fails
    #: startup too (otherwise it is a warning and requests get 503).
    startup_strict: bool = False
    health_path: str | None = '/@@health'  # None: no health check
    metrics: bool = False
    fast_reads: bool = True
    read_your_writes: bool = True
    slow_request_log: float | None = None  # seconds; None: off
    prometheus_path: str | None = None  # None: no Prometheus endpoint
    #: pyramid_zodbconn's ``zodbconn.transferlog``: a file to append a
    #: line per request to; '' for standard output; None: off
    transferlog: str | None = None
    #: ``zodbconn.transferlog_threshhold`` (sic): only slower requests
    transferlog_threshold: float | None = None

    @property
    def primary(self) -> DatabaseSpec | None:
        return self.databases[0] if self.databases else None


def _float(
    settings: Mapping, key: str, default: float, *, low: float = 0.0,
    high: float | None = None,
) -> float:
    raw = settings.get(key)
    if raw is None or str(raw).strip() == '':
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < low or (
        high is not None and value > high
    ):
        expected = (f'from {low:g} to {high:g}' if high is not None
                    else f'>= {low:g}')
        raise Bad(key, raw, f'expected a number of seconds {expected}')
    return value


def _int(
    settings: Mapping, key: str, default: int, *, low: int,
    high: int | None = None,
) -> int:
    raw = settings.get(key)
    if raw is None or str(raw).strip() == '':
        return default
    expected = (f'expected a whole number from {low} to {high}'
                if high is not None else f'expected a whole number >= {low}')
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise Bad(key, raw, expected) from None
    if value < low or (high is not None and value > high):
        raise Bad(key, raw, expected)
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


def _startup(settings: Mapping, key: str, default: bool) -> bool:
    """``true``/``false``, or ``strict`` (read again by the parser)."""
    raw = settings.get(key)
    if str(raw).strip().lower() == 'strict':
        return True
    try:
        return _bool(settings, key, default)
    except Bad:
        raise Bad(key, raw, 'expected true, false or strict') from None


def _whole(
    low: int, high: int | None = None
) -> Callable[[Mapping, str, int], int]:
    return functools.partial(_int, low=low, high=high)


def _seconds(
    low: float, high: float
) -> Callable[[Mapping, str, float], float]:
    return functools.partial(_float, low=low, high=high)


def _slow(settings: Mapping, key: str, default: float | None) -> float | None:
    raw = settings.get(key)
    if raw is None:
        return default
    if str(raw).strip().lower() in ('', 'off', 'false'):
        return None
    return _float(settings, key, 0.0, high=MAX_SLOW_LOG)


def _transferlog(
    settings: Mapping, key: str, default: str | None
) -> str | None:
    """pyramid_zodbconn's transfer log: a file (its folder must exist),
    or empty for standard output."""
    raw = settings.get(key)
    if raw is None:
        return default
    path = str(raw).strip()
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise Bad(key, raw, 'expected a file in an existing folder, or '
                            'nothing for standard output')
    if path and os.path.isdir(path):
        raise Bad(key, raw, 'expected a file, not a folder')
    return path


def _threshold(
    settings: Mapping, key: str, default: float | None
) -> float | None:
    if settings.get(key) is None or str(settings[key]).strip() == '':
        return default
    return _float(settings, key, 0.0, high=MAX_SLOW_LOG)


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


#: The settings read the plain way: key, ZeostoreSettings field, reader
#: ``reader(settings, key, default)``. The default is the field's.
READERS: tuple[tuple[str, str, Callable[..., Any]], ...] = (
    ('zeostore.connect_timeout', 'connect_timeout', _seconds(0, 300)),
    ('zeostore.reply_timeout', 'reply_timeout', _seconds(0.05, 3600)),
    ('zeostore.autostart', 'autostart', _bool),
    ('zeostore.autostart_timeout', 'autostart_timeout', _seconds(0.1, 600)),
    ('zeostore.retry_after', 'retry_after', _whole(0, 86400)),
    ('zeostore.conflict_lock', 'conflict_lock', _bool),
    ('zeostore.retry_backoff', 'retry_backoff', _seconds(0, 10)),
    ('zeostore.retry_backoff_max', 'retry_backoff_max', _seconds(0, 60)),
    ('retry.attempts', 'retry_attempts', _whole(1, 100)),
    ('zeostore.check_on_startup', 'check_on_startup', _startup),
    ('zeostore.autoevolve', 'autoevolve', _bool),
    ('zeostore.health_path', 'health_path', _path),
    ('zeostore.metrics', 'metrics', _bool),
    ('zeostore.fast_reads', 'fast_reads', _bool),
    ('zeostore.read_your_writes', 'read_your_writes', _bool),
    ('zeostore.slow_request_log', 'slow_request_log', _slow),
    ('zeostore.prometheus_path', 'prometheus_path', _path),
    ('zodbconn.transferlog', 'transferlog', _transferlog),
    ('zodbconn.transferlog_threshhold', 'transferlog_threshold', _threshold),
)


@functools.cache
def defaults() -> dict[str, Any]:
    """Each :class:`ZeostoreSettings` field's default, by field name."""
    return {f.name: f.default for f in fields(ZeostoreSettings)}


def _socket_group(settings: Mapping) -> int | None:
    key = 'zeostore.socket_group'
    raw = settings.get(key)
    if raw is None or str(raw).strip() == '':
        return None
    text = str(raw).strip()
    if text.isascii() and text.isdigit():
        gid = int(text)
        if gid > MAX_ID:
            raise Bad(key, raw, f'expected a group id from 0 to {MAX_ID}')
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
        default = defaults()['socket_mode']
        return default if group is None else default | 0o060
    if isinstance(raw, int) and not isinstance(raw, bool):
        mode = raw
    else:
        text = str(raw).strip().lower()
        text = text[2:] if text.startswith('0o') else text
        try:
            mode = (
                int(text, 8) if text.isascii() and text.isdigit() else -1
            )
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
    """Resolve ``uri`` to a storage factory and ``ZODB.DB`` keywords.

    ``zeo://`` goes to the package's resolver (a superset of zodburi's),
    also inside ``demo:(base)/(changes)``; every other scheme to zodburi.
    Raises :class:`ConfigurationError` naming ``key`` for an unknown
    scheme, an unknown parameter or a value of the wrong kind.
    """
    uri = uri.strip()
    if ':' not in uri:
        raise Bad(
            key,
            uri,
            'expected a database URI such as zeo:///path/to/zeo.sock, '
            'file:///path/to/Data.fs or memory://',
        )
    try:
        factory, dbkw = _resolve(uri)
    except zodburi.NoResolverForScheme as e:
        raise _unknown_scheme(key, e.uri) from None
    except zodburi.UnknownDatabaseKeywords as e:
        raise Bad(
            key,
            mask_password(uri),
            f'unknown URI parameter(s) {", ".join(sorted(e.kw))}',
        ) from None
    except URIParameterError as e:
        raise Bad(key, uri, str(e)) from None
    except Exception as e:  # ZConfig and the resolvers raise their own
        raise Bad(
            key, mask_password(uri), f'expected a valid database URI ({e})'
        ) from None
    for name in zodburi.CONNECTION_PARAMETERS:
        value = dbkw.get(name)
        low = 1 if name == 'pool_size' else 0
        if isinstance(value, (int, float)) and value < low:
            raise Bad(
                key, mask_password(uri),
                f'expected connection_{name} >= {low}, not {value}',
            )
    return factory, dbkw


#: ``demo:(base URI)/(changes URI)#DB keywords``, as zodburi spells it
DEMO_URI = re.compile(
    r'^demo:\((?P<base>.*)\)/\((?P<changes>.*)\)(?:#(?P<frag>.*))?$'
)


def _resolve(uri: str) -> tuple[Callable[..., Any], dict]:
    if uri.startswith('zeo://'):
        factory, raw = zeo_resolver(uri)
        return factory, db_keywords(raw)
    match = DEMO_URI.match(uri)
    if match is None:
        return zodburi.resolve_uri(uri)
    # zodburi's demo: resolver would send a zeo:// part to zodburi's own
    # zeo resolver (no server_sync, TLS or connect_timeout): resolve
    # each part here.
    parts = []
    for part in ('base', 'changes'):
        factory, kw = _resolve(match.group(part))
        if kw != db_keywords({}):
            raise ValueError(
                f'demo: DB parameters go after "#" ({part} part '
                f'{mask_password(match.group(part))!r} has some)'
            )
        parts.append(factory)
    raw = dict(parse_qsl(match.group('frag') or ''))
    return DemoFactory(*parts), db_keywords(raw)


#: zodburi's byte sizes: ``500mb``, ``2 GB``, ``1048576``
BYTES = re.compile(r'\s*(\d+)\s*([kmg])b\s*$')
BYTE_UNITS = {'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}


def db_keywords(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``ZODB.DB`` keywords from a URI's ``connection_*`` and
    ``database_name`` parameters, as ``zodburi.resolve_uri`` makes them
    for every scheme (its defaults, its parameter names).

    :raises zodburi.UnknownDatabaseKeywords: any other parameter.
    """
    kw = dict(_zodburi_defaults())
    unknown = {}
    for name, value in raw.items():
        param = name[len('connection_'):]
        if name == 'database_name':
            kw[name] = value
        elif (
            name.startswith('connection_')
            and param in zodburi.CONNECTION_PARAMETERS
        ):
            if isinstance(value, str) and param in zodburi.BYTES_PARAMETERS:
                match = BYTES.match(value.lower())
                value = (
                    int(match.group(1)) * BYTE_UNITS[match.group(2)]
                    if match else int(value)
                )
            kw[param] = int(value)
        else:
            unknown[name] = value
    if unknown:
        raise zodburi.UnknownDatabaseKeywords(unknown)
    return kw


@functools.cache
def _zodburi_defaults() -> dict[str, Any]:
    """The ``ZODB.DB`` keywords zodburi gives a URI without parameters."""
    return dict(zodburi.resolve_uri('memory://')[1])


def _unknown_scheme(key: str, uri: str) -> Bad:
    schemes = sorted(ep.name for ep in entry_points(group='zodburi.resolvers'))
    scheme = uri.split(':', 1)[0].lower()
    if scheme in ('postgresql', 'pgsql'):
        return Bad(
            key,
            mask_password(uri),
            'expected postgres://user:password@host:port/dbname: '
            "RelStorage's scheme for PostgreSQL is postgres://, not "
            f'{scheme}://',
        )
    hint = ''
    if scheme in RELSTORAGE_SCHEMES:
        hint = (
            f'; {scheme}:// is RelStorage\'s: pip install '
            '"pyramid_zeostore[relstorage]"'
        )
    return Bad(
        key,
        mask_password(uri),
        'expected a URI scheme a zodburi resolver provides '
        f'({", ".join(schemes)}){hint}',
    )


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
        path = str(configured).strip()
        if os.path.isdir(path) or path.endswith('/'):
            raise Bad(
                'zeostore.lock_file', configured,
                'expected the path of a file (in a folder this user may '
                'write), not a folder',
            )
        return path
    if primary is not None and primary.is_zeo:
        address = primary.zeo.addresses[0]
        if isinstance(address, str):
            # Beside the socket: every process of this host that talks to
            # this server finds the same lock.
            return address + '.lock'
    tag = zlib.crc32((primary.uri if primary else '').encode())
    return os.path.join(tempfile.gettempdir(), f'pyramid_zeostore-{tag:x}')


#: ``zeostore.`` keys read besides :data:`READERS`.
OTHER_KEYS = (
    'zeostore.zeo_conf', 'zeostore.appmaker', 'zeostore.lock_file',
    'zeostore.socket_group', 'zeostore.socket_mode',
)
#: Keys of the packages this one includes (pyramid_tm 2.6, pyramid_retry
#: 2.1), for a warning on a typo: their own settings are theirs to check.
THEIR_KEYS = (
    'tm.manager_hook', 'tm.commit_veto', 'tm.activate_hook',
    'tm.annotate_user', 'tm.attempts', 'retry.attempts',
    'retry.activate_hook',
)


def known_keys() -> set[str]:
    """Every ``zeostore.`` key pyramid_zeostore itself reads."""
    return {key for key, _, _ in READERS} | set(OTHER_KEYS)


#: Settings that name a callable by its dotted name.
DOTTED_KEYS = (
    'zeostore.appmaker', 'tm.manager_hook', 'tm.commit_veto',
    'tm.activate_hook', 'retry.activate_hook',
)


def check_dotted(settings: Mapping[str, Any], package: Any = None) -> None:
    """Import each dotted name a setting gives (relative ones from
    ``package``; without one they are left to the app), so that a typo is
    a ConfigurationError naming the setting, not an ImportError from
    whichever package reads it later."""
    resolver = DottedNameResolver(package)
    for key in DOTTED_KEYS:
        value = settings.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        if package is None and value.strip().startswith('.'):
            continue
        try:
            found = resolver.maybe_resolve(value.strip())
        except (ImportError, AttributeError, ValueError) as e:
            raise Bad(
                key, value,
                f'expected the dotted name of a callable, such as '
                f'mypackage.module.function ({type(e).__name__}: {e})',
            ) from None
        if not callable(found):
            raise Bad(key, value, 'expected the dotted name of a callable')


def check_keys(settings: Mapping[str, Any], known: set[str]) -> None:
    """Refuse an unknown ``zeostore.`` (or ``zodbconn.``) key, naming the
    closest known one (a typo would otherwise be ignored without a
    word); warn about an
    unknown ``tm.`` or ``retry.`` key, which belong to other packages."""
    for key in sorted(k for k in settings if isinstance(k, str)):
        prefix = key.split('.', 1)[0]
        if prefix == 'zeostore' and key not in known:
            raise Bad(key, settings[key],
                      f'expected a known setting ({_closest(key, known)})')
        if (
            prefix == 'zodbconn' and key not in known
            and key != 'zodbconn.uri'
            and not key.startswith('zodbconn.uri.')
        ):
            # pyramid_zodbconn's keys, read here: a typo is refused too
            raise Bad(key, settings[key],
                      f'expected a known setting ({_closest(key, known)})')
        if prefix in ('tm', 'retry') and key not in THEIR_KEYS:
            logging.getLogger(__name__).warning(
                'unknown setting %s (%s): pyramid_%s ignores it',
                key, _closest(key, THEIR_KEYS), prefix,
            )


def _closest(key: str, known: Any) -> str:
    """Compared without the shared prefix, which makes any key alike."""
    prefix, _, name = key.partition('.')
    names = {k.partition('.')[2]: k for k in known
             if k.startswith(prefix + '.')}
    found = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    if found:
        return f'did you mean {names[found[0]]}?'
    return "none is close: see the README's settings table"


def parse_settings(settings: Mapping[str, Any]) -> ZeostoreSettings:
    """Validate ``settings`` and return a :class:`ZeostoreSettings`.

    Opens nothing: URIs are resolved (zodburi turns them into storage
    factories), no storage is made.

    :raises pyramid.exceptions.ConfigurationError: naming the key, the
        value and what was expected.
    """
    default = defaults()
    values = {
        name: read(settings, key, default[name])
        for key, name, read in READERS
    }
    databases = values['databases'] = _database_specs(settings)
    zeo_conf = values['zeo_conf'] = settings.get('zeostore.zeo_conf') or None
    if values['autostart'] and not zeo_conf:
        raise Bad(
            'zeostore.zeo_conf',
            zeo_conf,
            'expected the path of the zeo.conf that zeostore.autostart '
            'starts (e.g. %(here)s/zeo.conf)',
        )
    if values['autostart'] and not os.path.isfile(zeo_conf):
        raise Bad('zeostore.zeo_conf', zeo_conf, 'expected an existing file')
    values['startup_strict'] = str(
        settings.get('zeostore.check_on_startup')
    ).strip().lower() == 'strict'
    appmaker = settings.get('zeostore.appmaker') or default['appmaker']
    if isinstance(appmaker, str):
        appmaker = appmaker.strip()
    values['appmaker'] = appmaker
    if (
        'zeostore.retry_backoff_max' in settings
        and values['retry_backoff_max'] < values['retry_backoff']
    ):
        raise Bad(
            'zeostore.retry_backoff_max', settings[
                'zeostore.retry_backoff_max'],
            f'expected at least zeostore.retry_backoff '
            f'({values["retry_backoff"]:g}): the cap of the backoff',
        )
    # Only the base given: its cap follows it up.
    values['retry_backoff_max'] = max(
        values['retry_backoff'], values['retry_backoff_max']
    )
    group = values['socket_group'] = _socket_group(settings)
    values['socket_mode'] = _socket_mode(settings, group)
    values['lock_file'] = _lock_file(
        settings, databases[0] if databases else None
    )
    if values['prometheus_path'] and (
        values['prometheus_path'] == values['health_path']
    ):
        raise Bad(
            'zeostore.prometheus_path', values['prometheus_path'],
            'expected a path other than zeostore.health_path',
        )
    return ZeostoreSettings(**values)
