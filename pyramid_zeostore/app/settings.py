"""The ready app's own settings -> an immutable :class:`AppSettings`.

Who may read and write, the session secret, which origins and hosts are
this site, and the size limits on what a request may send. Parsing opens
nothing: ``zeostore.secret_file`` is only named here; ``includeme`` reads
(or, the first time, writes) it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from pyramid.settings import aslist

from ..exceptions import ZeostoreConfigurationError as Bad
from ..settings import BYTE_UNITS, BYTES, _bool, _seconds, _whole

ANONYMOUS = ('read', 'none')
#: The shortest ``zeostore.secret`` accepted (characters).
MIN_SECRET = 32
MASKED = '***'


@dataclass(frozen=True)
class AppSettings:
    """Everything the ready app reads beyond the add-on's settings."""

    anonymous: str = 'read'  # 'read': anyone may read; 'none': log in
    secret: str | None = None  # signs the session cookie
    secret_file: str | None = None  # or a file holding it (made if absent)
    secure_cookies: bool = False  # Secure on http too (behind a proxy)
    session_timeout: int = 3600  # seconds idle before a session ends
    trusted_origins: tuple[str, ...] = ()  # besides this site's own
    trusted_hosts: tuple[str, ...] = ('localhost', '127.0.0.1', '::1')
    max_body: int = 1 << 20  # bytes; larger requests: 413
    max_value: int = 256 << 10  # bytes of JSON per attribute value: 413
    large_value: int = 2048  # bytes of JSON: stored as a record of its own
    login_attempts: int = 5  # failures per user in login_window, then 429
    login_window: float = 60.0  # seconds


def _anonymous(settings: Mapping, key: str, default: str) -> str:
    raw = settings.get(key)
    if raw is None or str(raw).strip() == '':
        return default
    value = str(raw).strip().lower()
    if value not in ANONYMOUS:
        raise Bad(
            key, raw,
            "expected 'read' (anyone may read, writers log in) or 'none' "
            '(everyone logs in)',
        )
    return value


def _secret(settings: Mapping, key: str, default: str | None) -> str | None:
    raw = settings.get(key)
    if raw is None or str(raw).strip() == '':
        return default
    value = str(raw).strip()
    if len(value) < MIN_SECRET:
        raise Bad(
            key, MASKED,
            f'expected at least {MIN_SECRET} random characters, e.g. from '
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    return value


def _text(settings: Mapping, key: str, default: str | None) -> str | None:
    raw = settings.get(key)
    return default if raw is None or not str(raw).strip() else str(raw).strip()


def _bytes(settings: Mapping, key: str, default: int) -> int:
    raw = settings.get(key)
    if raw is None or str(raw).strip() == '':
        return default
    text = str(raw).strip().lower()
    match = BYTES.match(text)
    if match and int(match.group(1)) > 0:
        return int(match.group(1)) * BYTE_UNITS[match.group(2)]
    if text.isascii() and text.isdigit() and int(text) > 0:
        return int(text)
    raise Bad(key, raw, 'expected a size in bytes such as 1048576 or 1mb')


DEFAULT_PORTS = {'http': 80, 'https': 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url`` as browsers send it (lower
    case, default ports dropped), or None if it has no such origin."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname
    if ':' in host:
        host = f'[{host}]'
    if port is not None and port != DEFAULT_PORTS[parts.scheme]:
        host = f'{host}:{port}'
    return f'{parts.scheme}://{host}'


def _origins(settings: Mapping, key: str, default: tuple) -> tuple:
    raw = settings.get(key)
    if raw is None:
        return default
    origins = []
    for item in aslist(raw):
        parts = urlsplit(item)
        origin = origin_of(item)
        if (
            origin is None
            or parts.path not in ('', '/')
            or parts.query
            or parts.fragment
            or '@' in parts.netloc
        ):
            raise Bad(
                key, raw,
                'expected origins such as https://admin.example.com or '
                f'http://localhost:6543 (scheme://host[:port]), not {item!r}',
            )
        origins.append(origin)
    return tuple(origins)


def _hosts(settings: Mapping, key: str, default: tuple) -> tuple:
    raw = settings.get(key)
    if raw is None or not str(raw).strip():
        return default  # as for every other key: empty is the default
    hosts = tuple(h.lower().strip('[]') for h in aslist(raw))
    for host in hosts:
        if not host or any(c in host for c in '/#?@ ') or (
            ':' in host and host.count(':') == 1  # a port: not compared
        ):
            raise Bad(
                key, raw,
                'expected host names without a port, such as example.com, '
                '.example.com (and its subdomains) or * (any: only behind '
                'a proxy that checks the Host)',
            )
    return hosts


#: key, AppSettings field, reader (as in :data:`..settings.READERS`)
READERS: tuple[tuple[str, str, Callable[..., Any]], ...] = (
    ('zeostore.anonymous', 'anonymous', _anonymous),
    ('zeostore.secret', 'secret', _secret),
    ('zeostore.secret_file', 'secret_file', _text),
    ('zeostore.secure_cookies', 'secure_cookies', _bool),
    ('zeostore.session_timeout', 'session_timeout', _whole(60, 31 * 86400)),
    ('zeostore.trusted_origins', 'trusted_origins', _origins),
    ('zeostore.trusted_hosts', 'trusted_hosts', _hosts),
    ('zeostore.max_body', 'max_body', _bytes),
    ('zeostore.max_value', 'max_value', _bytes),
    ('zeostore.large_value', 'large_value', _bytes),
    ('zeostore.login_attempts', 'login_attempts', _whole(1, 1000)),
    ('zeostore.login_window', 'login_window', _seconds(0, 86400)),
)


@functools.cache
def defaults() -> dict[str, Any]:
    return {f.name: f.default for f in fields(AppSettings)}


def parse_app_settings(settings: Mapping[str, Any]) -> AppSettings:
    """Validate the ready app's settings.

    :raises pyramid.exceptions.ConfigurationError: naming the key (a
        secret is never shown).
    """
    default = defaults()
    values = {
        name: read(settings, key, default[name])
        for key, name, read in READERS
    }
    if values['secret'] and values['secret_file']:
        raise Bad(
            'zeostore.secret_file', values['secret_file'],
            'expected zeostore.secret or zeostore.secret_file, not both',
        )
    if values['max_value'] > values['max_body']:
        raise Bad(
            'zeostore.max_value', values['max_value'],
            f'expected at most zeostore.max_body ({values["max_body"]})',
        )
    return AppSettings(**values)
