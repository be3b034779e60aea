"""The ``zeo://`` resolver: zodburi's, plus what ZEO 6 takes and it lacks.

zodburi 3 cannot express ZEO's ``server_sync``, TLS or several server
addresses, and it still passes ``debug``/``wait_for_server_on_startup``,
which ZEO 6 rejects with a bare ``TypeError``. :class:`ZEOURIResolver`
subclasses zodburi's resolver (same parsing, same value converters) and
adds those parameters; pyramid_zeostore uses it for every ``zeo://`` URI.
Every other scheme goes to zodburi unchanged.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl as _ssl
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from ZEO.ClientStorage import ClientStorage
from ZODB.DemoStorage import DemoStorage
from zodburi.resolvers import ClientStorageURIResolver

from .compat import ZODBURI_ZEO_INT_ARGS, ZODBURI_ZEO_STRING_ARGS
from .display import format_address
from .exceptions import TLSFileError, URIParameterError

#: Parameters zodburi accepts but ZEO 6 removed, with what to do instead.
REMOVED = {
    'debug': 'remove it (ZEO 6 has no debug option)',
    'wait_for_server_on_startup': (
        'remove it and use "wait" / zeostore.connect_timeout instead'
    ),
}

SSL_PARAMS = ('ssl_certfile', 'ssl_keyfile', 'ssl_cafile')


@dataclass(frozen=True)
class TLSOptions:
    """Certificate files for a TLS connection to ZEO; read at open time."""

    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    server_hostname: str | None = None

    def context(self) -> _ssl.SSLContext:
        """A client context that checks the server against ``cafile``.

        :raises TLSFileError: a file cannot be read or used, naming its
            URI parameter.
        """
        files = f'ssl_cafile={self.cafile}'
        try:
            ctx = _ssl.create_default_context(
                _ssl.Purpose.SERVER_AUTH, cafile=self.cafile
            )
            if self.certfile:
                files = (
                    f'ssl_certfile={self.certfile}, '
                    f'ssl_keyfile={self.keyfile or self.certfile}'
                )
                ctx.load_cert_chain(self.certfile, self.keyfile)
        except OSError as e:  # ssl.SSLError too
            raise TLSFileError(f'cannot use {files}: {e}') from None
        if not self.server_hostname:
            # A Unix socket or an address without a name to check: the
            # CA still authenticates the server's certificate.
            ctx.check_hostname = False
        return ctx


#: Seconds that :meth:`ZEOFactory.diagnose` may spend on all addresses.
PROBE_TIMEOUT = 1.0


def probe(
    address: Any, timeout: float, tls: TLSOptions | None = None
) -> str | None:
    """Why a ZEO client cannot connect to ``address``, if we can tell.

    Connects once (with TLS if ``tls`` is given) and reads the first
    byte, which a ZEO server sends unasked. ZEO's own client retries
    silently; this says *why*: refused, permission denied, a server
    certificate this client refuses, a server that drops this client
    after the TLS handshake. Spends at most ``timeout`` seconds; returns
    ``None`` when the server answers.

    :raises TLSFileError: a TLS file cannot be used.
    """
    context = tls.context() if tls is not None else None
    deadline = time.monotonic() + timeout
    try:
        if isinstance(address, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(address)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(
                (address[0] or '127.0.0.1', address[1]), timeout
            )
    except ConnectionResetError as e:  # accepted, then reset at once
        return f'the server dropped the connection: {e}'
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            return f'{e} (this user may not use the socket: see its mode)'
        return f'{e} (is runzeo running?)'
    with sock:
        if context is None:
            return _first_byte(sock, deadline, timeout, None)
        hostname = tls.server_hostname
        if hostname is None and not isinstance(address, str):
            hostname = address[0] or '127.0.0.1'  # as asyncio does
        sock.settimeout(_left(deadline))
        try:
            stream = context.wrap_socket(sock, server_hostname=hostname)
        except _ssl.SSLCertVerificationError as e:
            return (
                f'this client refused the server certificate: {e} '
                '(check ssl_cafile and ssl_server_hostname)'
            )
        except OSError as e:  # SSLError, reset, timeout
            return f'TLS handshake failed: {e}'
        with stream:
            return _first_byte(stream, deadline, timeout, tls)


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.001)


def _first_byte(
    sock: socket.socket,
    deadline: float,
    timeout: float,
    tls: TLSOptions | None,
) -> str | None:
    """Read the byte a ZEO server sends first; what went wrong, if any."""
    if tls is None:
        silent = ' (a TLS server? then set ssl_cafile, ssl_certfile ...)'
        dropped = ''
    else:
        silent = ''
        # TLS 1.3: the server checks this client's certificate after the
        # handshake; asyncio (runzeo) then just closes, without an alert.
        dropped = ' after the TLS handshake: ' + (
            'it refused this client\'s certificate (is ssl_certfile '
            'signed by the CA of the server\'s "authenticate", and valid?)'
            if tls.certfile
            else 'this client sent no certificate, and ZEO servers '
            'require one (set ssl_certfile, ssl_keyfile)'
        )
    sock.settimeout(_left(deadline))
    try:
        data = sock.recv(1)
    except TimeoutError:
        return f'the server sent nothing within {timeout:.3g}s{silent}'
    except OSError as e:  # reset, or a TLS alert
        return f'the server dropped the connection{dropped}: {e}'
    if not data:
        return f'the server closed the connection{dropped}'
    return None


def parse_address(text: str) -> str | tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a socket path, as ZEO takes it."""
    text = text.strip()
    if text.startswith('/'):
        return os.path.normpath(text)
    split = urlsplit('//' + text)
    try:
        port = split.port
    except ValueError:  # not a number, or out of range
        port = None
    if split.hostname is None or not port:
        raise ValueError(
            f'expected host:port (port 1 to 65535) or /path/to/socket: '
            f'{text!r}'
        )
    return (split.hostname, port)


#: ``zeo://`` parameters that are true or false (zodburi reads any whole
#: number as true).
BOOL_PARAMS = frozenset((
    'read_only', 'read_only_fallback', 'shared_blob_dir', 'server_sync',
    'wait', 'demostorage', 'drop_cache_rather_verify',
))
BOOLS = frozenset(('0', '1', 'true', 'false', 'yes', 'no', 'on', 'off'))


class ZEOURIResolver(ClientStorageURIResolver):
    """Resolve ``zeo://`` URIs to a ``ClientStorage`` factory.

    Beyond zodburi's parameters it takes ``server_sync`` (true/false),
    ``addresses`` (more servers, comma-separated ``host:port`` or socket
    paths), ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cafile`` and
    ``ssl_server_hostname``, and a fractional ``wait_timeout``.

    The factory takes keyword overrides (``wait_timeout`` from
    ``zeostore.connect_timeout``); values in the URI win over them.
    """

    _int_args = tuple(
        a
        for a in ZODBURI_ZEO_INT_ARGS
        if a not in REMOVED and a != 'wait_timeout'
    ) + ('server_sync',)
    _float_args = ('wait_timeout',)
    _string_args = ZODBURI_ZEO_STRING_ARGS + (
        'addresses',
        'ssl_server_hostname',
    ) + SSL_PARAMS

    def __call__(self, uri: str) -> tuple[Callable[..., Any], dict]:
        split = urlsplit(uri.replace('zeo://', 'http://', 1))
        raw = dict(parse_qsl(split.query, keep_blank_values=True))
        for name, fix in REMOVED.items():
            if name in raw:
                raise URIParameterError(uri, name, fix)
        for name, value in raw.items():
            if not value.strip():
                # Dropped, it would change the meaning: ssl_cafile= would
                # connect without TLS.
                raise URIParameterError(
                    uri, name, 'expected a value (leave the parameter out '
                    'for its default)'
                )
            if name in BOOL_PARAMS and value.strip().lower() not in BOOLS:
                raise URIParameterError(
                    uri, name, f'expected true or false, not {value!r}'
                )
        try:
            kw, unused = self.interpret_kwargs(raw)
        except ValueError as e:
            raise URIParameterError(uri, 'value', str(e)) from None
        if split.netloc:
            try:
                port = split.port
            except ValueError:  # not a number, or out of range
                port = 0
            if port == 0 or not split.hostname and split.port is None:
                raise ValueError(
                    f'expected a server address: zeo://host:port (port 1 '
                    f'to 65535) or zeo:///path/to/zeo.sock, not '
                    f'{split.netloc!r}'
                )
            addresses: list = [(split.hostname or '', port or 9991)]
        elif split.path.strip('/'):
            addresses = [os.path.normpath(split.path)]
        else:
            raise ValueError(
                'expected a server address: zeo://host:port or '
                'zeo:///path/to/zeo.sock'
            )
        check_values(kw)
        extra = kw.pop('addresses', '')
        try:
            addresses += [parse_address(a) for a in extra.split(',') if a]
        except ValueError as e:
            raise URIParameterError(uri, 'addresses', str(e)) from None
        tls_kw = {k[4:]: kw.pop(k) for k in SSL_PARAMS if k in kw}
        if tls_kw.get('keyfile') and not tls_kw.get('certfile'):
            raise ValueError(
                'ssl_keyfile needs ssl_certfile: the certificate that '
                'key belongs to'
            )
        hostname = kw.pop('ssl_server_hostname', None)
        tls = None
        if tls_kw or hostname:
            tls = TLSOptions(server_hostname=hostname, **tls_kw)
        demo = bool(kw.pop('demostorage', 0))
        if 'server_sync' in kw:
            kw['server_sync'] = bool(kw['server_sync'])
        return ZEOFactory(tuple(addresses), kw, tls, demo), unused


#: The largest ``wait_timeout``, as for ``zeostore.connect_timeout``.
MAX_WAIT = 300.0


def check_values(kw: dict) -> None:
    """Refuse ``zeo://`` values ZEO would take and misuse: a negative
    size or poll interval, an endless or negative wait.

    :raises ValueError: naming the parameter and what was expected.
    """
    for name, value in kw.items():
        if name == 'wait_timeout' and not 0 <= value <= MAX_WAIT:
            raise ValueError(
                f'wait_timeout={value:g}: expected a number of seconds '
                f'from 0 to {MAX_WAIT:g}'
            )
        if isinstance(value, int) and not isinstance(value, bool) and (
            value < 0
        ):
            raise ValueError(f'{name}={value}: expected a number >= 0')


@dataclass(frozen=True)
class ZEOFactory:
    """Opens a ``ClientStorage``; knows its addresses for error messages."""

    addresses: tuple
    kw: dict
    tls: TLSOptions | None = None
    demo: bool = False

    @property
    def address(self) -> Any:
        return self.addresses[0] if len(self.addresses) == 1 else list(
            self.addresses
        )

    def __call__(self, **defaults: Any) -> Any:
        """A ``ClientStorage`` (in a ``DemoStorage`` with ``demostorage``).

        :raises TLSFileError: a TLS file cannot be used.
        """
        kw = {**defaults, **self.kw}
        if self.tls is not None:
            kw['ssl'] = self.tls.context()
            if self.tls.server_hostname:
                kw['ssl_server_hostname'] = self.tls.server_hostname
        storage = ClientStorage(list(self.addresses), **kw)
        if self.demo:
            return DemoStorage(base=storage)
        return storage

    def diagnose(self, timeout: float = PROBE_TIMEOUT) -> str | None:
        """Why no address answers, as found by one :func:`probe` each.

        Spends at most ``timeout`` seconds in all. Returns ``None`` if
        no probe finds a reason.
        """
        if self.tls is not None:
            try:
                self.tls.context()
            except TLSFileError as e:
                return str(e)
        deadline = time.monotonic() + timeout
        reasons = []
        for address in self.addresses:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            reason = probe(address, left, self.tls)
            if reason and len(self.addresses) > 1:
                reason = f'{format_address(address)}: {reason}'
            if reason:
                reasons.append(reason)
        return '; '.join(reasons) or None


zeo_resolver = ZEOURIResolver()


@dataclass(frozen=True)
class DemoFactory:
    """Opens a ``DemoStorage`` over the storages of two factories: what
    ``demo:(base URI)/(changes URI)`` names. A ZEO part gets the same
    keyword defaults (``wait_timeout``) as a ``zeo://`` database."""

    base: Callable[..., Any]
    changes: Callable[..., Any]

    def __call__(self, **defaults: Any) -> Any:
        return DemoStorage(
            base=_open_part(self.base, defaults),
            changes=_open_part(self.changes, defaults),
        )


def _open_part(factory: Callable[..., Any], defaults: dict) -> Any:
    if isinstance(factory, (ZEOFactory, DemoFactory)):
        return factory(**defaults)
    return factory()


def zeo_part(factory: Any) -> ZEOFactory | None:
    """The ZEO factory of ``factory``: itself, or the first one inside a
    :class:`DemoFactory`; None if it opens no ZEO client."""
    if isinstance(factory, ZEOFactory):
        return factory
    if isinstance(factory, DemoFactory):
        return zeo_part(factory.base) or zeo_part(factory.changes)
    return None
