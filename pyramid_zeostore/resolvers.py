"""The ``zeo://`` resolver: zodburi's, plus what ZEO 6 takes and it lacks.

zodburi 3 cannot express ZEO's ``server_sync``, TLS or several server
addresses, and it still passes ``debug``/``wait_for_server_on_startup``,
which ZEO 6 rejects with a bare ``TypeError``. :class:`ZEOURIResolver`
subclasses zodburi's resolver (same parsing, same value converters) and
adds those parameters; pyramid_zeostore uses it for every ``zeo://`` URI.
Every other scheme goes to zodburi unchanged.
"""

from __future__ import annotations

import os
import ssl as _ssl
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from zodburi.resolvers import ClientStorageURIResolver

#: Parameters zodburi accepts but ZEO 6 removed, with what to do instead.
REMOVED = {
    'debug': 'remove it (ZEO 6 has no debug option)',
    'wait_for_server_on_startup': (
        'remove it and use "wait" / zeostore.connect_timeout instead'
    ),
}

SSL_PARAMS = ('ssl_certfile', 'ssl_keyfile', 'ssl_cafile')


class URIParameterError(ValueError):
    """A ``zeo://`` URI has a parameter that cannot work; says the fix."""

    def __init__(self, uri: str, name: str, fix: str) -> None:
        self.uri = uri
        self.name = name
        super().__init__(f'parameter {name!r} is not supported: {fix}')


@dataclass(frozen=True)
class TLSOptions:
    """Certificate files for a TLS connection to ZEO; read at open time."""

    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    server_hostname: str | None = None

    def context(self) -> _ssl.SSLContext:
        """A client context that checks the server against ``cafile``."""
        ctx = _ssl.create_default_context(
            _ssl.Purpose.SERVER_AUTH, cafile=self.cafile
        )
        if self.certfile:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        if not self.server_hostname:
            # A Unix socket or an address without a name to check: the
            # CA still authenticates the server's certificate.
            ctx.check_hostname = False
        return ctx


def parse_address(text: str) -> str | tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a socket path, as ZEO takes it."""
    text = text.strip()
    if text.startswith('/'):
        return os.path.normpath(text)
    split = urlsplit('//' + text)
    if split.hostname is None or split.port is None:
        raise ValueError(f'expected host:port or /path/to/socket: {text!r}')
    return (split.hostname, split.port)


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
        for a in ClientStorageURIResolver._int_args
        if a not in REMOVED and a != 'wait_timeout'
    ) + ('server_sync',)
    _float_args = ('wait_timeout',)
    _string_args = ClientStorageURIResolver._string_args + (
        'addresses',
        'ssl_server_hostname',
    ) + SSL_PARAMS

    def __call__(self, uri: str) -> tuple[Callable[..., Any], dict]:
        split = urlsplit(uri.replace('zeo://', 'http://', 1))
        raw = dict(parse_qsl(split.query))
        for name, fix in REMOVED.items():
            if name in raw:
                raise URIParameterError(uri, name, fix)
        try:
            kw, unused = self.interpret_kwargs(raw)
        except ValueError as e:
            raise URIParameterError(uri, 'value', str(e)) from None
        if split.netloc:
            addresses: list = [(split.hostname or '', split.port or 9991)]
        else:
            addresses = [os.path.normpath(split.path)]
        extra = kw.pop('addresses', '')
        try:
            addresses += [parse_address(a) for a in extra.split(',') if a]
        except ValueError as e:
            raise URIParameterError(uri, 'addresses', str(e)) from None
        tls_kw = {k[4:]: kw.pop(k) for k in SSL_PARAMS if k in kw}
        hostname = kw.pop('ssl_server_hostname', None)
        tls = None
        if tls_kw or hostname:
            tls = TLSOptions(server_hostname=hostname, **tls_kw)
        demo = bool(kw.pop('demostorage', 0))
        if 'server_sync' in kw:
            kw['server_sync'] = bool(kw['server_sync'])
        return ZEOFactory(tuple(addresses), kw, tls, demo), unused


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
        from ZEO.ClientStorage import ClientStorage

        kw = {**defaults, **self.kw}
        if self.tls is not None:
            kw['ssl'] = self.tls.context()
            if self.tls.server_hostname:
                kw['ssl_server_hostname'] = self.tls.server_hostname
        storage = ClientStorage(list(self.addresses), **kw)
        if self.demo:
            from ZODB.DemoStorage import DemoStorage

            return DemoStorage(base=storage)
        return storage


zeo_resolver = ZEOURIResolver()
