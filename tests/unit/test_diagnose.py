"""Why a ZEO server cannot be reached: probe(), diagnose(), the message,
without a socket.

ZEO's client retries silently (over TLS, a refused client certificate
shows up nowhere), so after a bounded wait pyramid_zeostore probes the
addresses once itself. Here the parts that need no server: a probe whose
connect is refused with EACCES or reset (``socket.create_connection``
replaced), TLS files that cannot be used (at diagnose and at open),
``format_address``, the text of ``DatabaseUnavailable`` with and without
a reason, and ``wait_available`` raising the diagnosed error. The real
loopback and Unix-socket servers (greeting, closing, resetting, silent,
TLS with client certificates) are in tests/functional/test_diagnose.py.
"""

from __future__ import annotations

import errno
import logging
import os
import socket

import pytest

from pyramid_zeostore import Databases, DatabaseUnavailable, parse_settings
from pyramid_zeostore.exceptions import ZeostoreConfigurationError
from pyramid_zeostore.resolvers import (
    format_address,
    probe,
    zeo_resolver,
)

# -- a connect that fails -----------------------------------------------------


def test_probe_permission_denied(monkeypatch):
    def denied(address, timeout):
        raise PermissionError(errno.EACCES, 'Permission denied')

    monkeypatch.setattr(socket, 'create_connection', denied)
    reason = probe(('127.0.0.1', 1), 5)
    assert 'Permission denied' in reason
    assert 'may not use the socket' in reason


def test_a_reset_while_connecting(monkeypatch):
    def reset(*args, **kw):
        raise ConnectionResetError(104, 'Connection reset by peer')

    monkeypatch.setattr(socket, 'create_connection', reset)
    reason = probe(('127.0.0.1', 1), 5)
    assert reason.startswith('the server dropped the connection: ')


# -- ZEOFactory.diagnose ------------------------------------------------------


def factory(uri):
    return zeo_resolver(uri)[0]


def test_diagnose_with_unusable_tls_files(tmp_path):
    f = factory(f'zeo:///x.sock?ssl_cafile={tmp_path}/missing.pem')
    assert f.diagnose(5).startswith('cannot use ssl_cafile=')


def test_format_address():
    assert format_address('/var/zeo.sock') == '/var/zeo.sock'
    assert format_address(('127.0.0.1', 8100)) == '127.0.0.1:8100'
    assert format_address(('::1', 8100)) == '[::1]:8100'


# -- the error, the log, the open ---------------------------------------------


def test_database_unavailable_message():
    e = DatabaseUnavailable('', '/x.sock', 2.0)
    assert str(e) == (
        'the primary database is unavailable: no ZEO server answered at '
        '/x.sock within 2s (is runzeo running? see zeostore.connect_timeout)'
    )
    assert e.reason is None
    e = DatabaseUnavailable('other', ('h', 1), 0.5, 'TLS handshake failed: x')
    assert str(e) == (
        "database 'other' is unavailable: no ZEO server answered at "
        "('h', 1) within 0.5s (see zeostore.connect_timeout): "
        'TLS handshake failed: x'
    )
    assert e.reason == 'TLS handshake failed: x'


def databases(uri, timeout='0.2'):
    parsed = parse_settings(
        {'zodb_uri': uri, 'zeostore.connect_timeout': timeout}
    )
    return Databases(parsed.databases, parsed.connect_timeout)


def test_unavailable_without_zeo_has_no_reason(caplog):
    dbs = databases('memory://')
    with caplog.at_level(logging.WARNING, 'pyramid_zeostore.databases'):
        exc = dbs.unavailable('')
    assert exc.reason is None
    assert 'memory://' in caplog.text


def test_unusable_tls_files_at_open_name_the_key(tmp_path):
    dbs = databases(f'zeo://{tmp_path}/x.sock?ssl_cafile={tmp_path}/no.pem')
    with pytest.raises(ZeostoreConfigurationError) as info:
        dbs.get()
    assert info.value.key == 'zodb_uri'
    assert 'expected usable TLS files (cannot use ssl_cafile=' in str(
        info.value
    )
    assert not os.path.exists(f'{tmp_path}/x.sock')


def test_wait_available_raises_the_diagnosed_error(pyramid_config):
    from pyramid import testing

    from pyramid_zeostore.connection import wait_available
    from pyramid_zeostore.interfaces import IDatabases

    error = DatabaseUnavailable('', '/x.sock', 0.1, 'why')

    class Unreachable:
        connect_timeout = 0.1

        def get(self, name):
            return None

        def wait_connected(self, name, deadline):
            return False

        def unavailable(self, name):
            return error

    pyramid_config.registry.registerUtility(Unreachable(), IDatabases)
    request = testing.DummyRequest()
    request.registry = pyramid_config.registry
    with pytest.raises(DatabaseUnavailable) as info:
        wait_available(request)
    assert info.value is error
