"""Why a ZEO server cannot be reached: probe(), diagnose() and the open,
against real sockets.

ZEO's client retries silently (over TLS, a refused client certificate
shows up nowhere), so after a bounded wait pyramid_zeostore probes the
addresses once itself. Real loopback and Unix sockets here: small
servers in threads behave like a ZEO server (it speaks first), a dead
one (absent socket file, refused port), one that closes, resets or stays
silent, or a TLS server that requires a client certificate of its CA
(made with the openssl binary, tests/tlscerts.py); ``diagnose`` names
each failing address of several, and a failed open carries and logs the
reason. What needs no socket is in tests/unit/test_diagnose.py.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading

import pytest

from pyramid_zeostore import DatabaseUnavailable
from pyramid_zeostore.resolvers import (
    TLSFileError,
    TLSOptions,
    format_address,
    probe,
)
from tests.unit.test_diagnose import databases, factory


class Server:
    """A loopback server in a thread, one behaviour for every client:
    ``greet`` (speaks first, like ZEO), ``close``, ``reset``, ``silent``;
    with ``tls``, a TLS server that requires a client certificate."""

    def __init__(self, behaviour, path=None, tls=None):
        self.behaviour = behaviour
        self.tls = tls
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
            self.address = path
        else:
            self.sock = socket.socket()
            self.sock.bind(('127.0.0.1', 0))
            self.address = self.sock.getsockname()
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.stopped = threading.Event()
        self.held = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            try:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                self.behave(conn)
            except OSError:  # a refused handshake: asyncio just closes
                conn.close()

    def behave(self, conn):
        if self.behaviour == 'greet':
            conn.sendall(b'Z')
            conn.close()
        elif self.behaviour == 'close':
            conn.close()
        elif self.behaviour == 'reset':
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)
            )
            conn.close()
        else:  # silent
            self.held.append(conn)

    def stop(self):
        self.stopped.set()
        self.thread.join(10)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def serve():
    servers = []

    def start(*args, **kw):
        server = Server(*args, **kw)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def server_context(certs):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                     cafile=certs.ca)
    ctx.load_cert_chain(certs.path('server.pem'), certs.path('server.key'))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def tls(certs, client='client', ca='ca', hostname='localhost'):
    return TLSOptions(
        certfile=certs.path(f'{client}.pem') if client else None,
        keyfile=certs.path(f'{client}.key') if client else None,
        cafile=certs.path(f'{ca}.pem'),
        server_hostname=hostname,
    )


# -- plain connections --------------------------------------------------------


def test_probe_of_a_working_server_finds_nothing(serve, tmp_path):
    assert probe(serve('greet').address, 5) is None
    unix = serve('greet', path=str(tmp_path / 'zeo.sock'))
    assert probe(unix.address, 5) is None


def test_probe_absent_and_refused(tmp_path):
    reason = probe(str(tmp_path / 'nobody.sock'), 5)
    assert 'No such file' in reason and 'is runzeo running?' in reason
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        address = s.getsockname()  # bound, not listening: refused
        assert 'Connection refused' in probe(address, 5)


@pytest.mark.parametrize(
    'behaviour, words',
    [
        ('close', 'the server closed the connection'),
        ('reset', 'the server dropped the connection: '),
        ('silent', 'the server sent nothing within 0.3s (a TLS server?'),
    ],
)
def test_probe_of_a_server_that_does_not_speak_zeo(serve, behaviour, words):
    reason = probe(serve(behaviour).address, 0.3)
    assert reason.startswith(words), reason


# -- TLS ----------------------------------------------------------------------


def test_probe_tls_with_a_valid_client_certificate(serve, certs, tmp_path):
    server = serve('greet', tls=server_context(certs))
    assert probe(server.address, 5, tls(certs)) is None
    # No name to check: the address (as asyncio does), no hostname check.
    assert probe(server.address, 5, tls(certs, hostname=None)) is None
    unix = serve('greet', path=str(tmp_path / 's'), tls=server_context(certs))
    assert probe(unix.address, 5, tls(certs, hostname=None)) is None


@pytest.mark.parametrize(
    'client, words',
    [
        (None, 'this client sent no certificate, and ZEO servers require'),
        ('intruder', "it refused this client's certificate"),
    ],
)
def test_probe_tls_server_drops_the_client(serve, certs, client, words):
    server = serve('greet', tls=server_context(certs))
    reason = probe(server.address, 5, tls(certs, client=client))
    assert reason.startswith('the server '), reason
    assert 'after the TLS handshake' in reason and words in reason, reason


def test_probe_tls_client_refuses_the_server(serve, certs):
    server = serve('greet', tls=server_context(certs))
    for options in (tls(certs, ca='rogue'), tls(certs, hostname='other')):
        reason = probe(server.address, 5, options)
        assert reason.startswith(
            'this client refused the server certificate'
        ), reason
        assert 'CERTIFICATE_VERIFY_FAILED' in reason


def test_probe_tls_handshake_cut_short(serve, certs):
    # A plain server that hangs up at once: no TLS handshake at all.
    reason = probe(serve('close').address, 5, tls(certs))
    assert reason.startswith('TLS handshake failed: '), reason


def test_probe_tls_silent_after_the_handshake(serve, certs):
    server = serve('silent', tls=server_context(certs))
    reason = probe(server.address, 0.5, tls(certs))
    assert reason == 'the server sent nothing within 0.5s'


def test_tls_files_that_cannot_be_used_name_the_parameter(certs, tmp_path):
    with pytest.raises(TLSFileError) as info:
        TLSOptions(cafile=str(tmp_path / 'missing.pem')).context()
    assert str(info.value).startswith(
        f'cannot use ssl_cafile={tmp_path}/missing.pem: '
    )
    with pytest.raises(TLSFileError) as info:
        TLSOptions(cafile=certs.ca, certfile=certs.ca).context()  # no key
    assert f'ssl_certfile={certs.ca}, ssl_keyfile={certs.ca}' in str(
        info.value
    )


# -- ZEOFactory.diagnose ------------------------------------------------------


def test_diagnose_names_each_failing_address_of_several(serve, tmp_path):
    live = serve('greet').address
    dead = str(tmp_path / 'dead.sock')
    f = factory(f'zeo://{dead}?addresses={format_address(live)}')
    assert f.diagnose(5) == (
        f'{dead}: [Errno 2] No such file or directory (is runzeo running?)'
    )
    f = factory(f'zeo://{format_address(live)}')
    assert f.diagnose(5) is None
    assert factory(f'zeo://{dead}').diagnose(0) is None  # no time left
    assert 'No such file' in factory(f'zeo://{dead}').diagnose()


# -- the open -----------------------------------------------------------------


def test_open_failure_carries_and_logs_the_reason(tmp_path, caplog):
    dbs = databases(f'zeo://{tmp_path}/dead.sock')
    with caplog.at_level(logging.WARNING, 'pyramid_zeostore.databases'):
        with pytest.raises(DatabaseUnavailable) as info:
            dbs.get()
    assert 'No such file or directory' in info.value.reason
    assert str(info.value) in caplog.text
    assert dbs._failed[2].reason == info.value.reason  # replayed with it
