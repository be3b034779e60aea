"""ZEO options zodburi 3 cannot express, reached from the URI, for real:
TLS with client certificates, several server addresses, server_sync."""

from __future__ import annotations

import subprocess
import time

import pytest
import transaction

from pyramid_zeostore import (
    Databases,
    DatabaseUnavailable,
    parse_settings,
    zeoserver,
)

from .conftest import free_port


def start_runzeo(directory, address_line, extra=''):
    conf = directory / 'zeo.conf'
    conf.write_text(
        f"""<zeo>
  address {address_line}
  {extra}
</zeo>
<filestorage 1>
  path {directory}/Data.fs
</filestorage>
"""
    )
    return subprocess.Popen(
        zeoserver.runzeo_command(str(conf)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def roundtrip(uri, **settings):
    parsed = parse_settings({'zodb_uri': uri, **settings})
    databases = Databases(parsed.databases, parsed.connect_timeout)
    try:
        db = databases.get()
        tm = transaction.TransactionManager(explicit=True)
        tm.begin()
        conn = db.open(transaction_manager=tm)
        conn.root()['n'] = conn.root().get('n', 0) + 1
        tm.commit()
        value = conn.root()['n']
        conn.close()
        return value, db.storage
    finally:
        databases.close()


def test_tls_with_client_certificate(certs, tmp_path):
    port = free_port()
    proc = start_runzeo(
        tmp_path, f'127.0.0.1:{port}', certs.server_ssl_block()
    )
    try:
        assert zeoserver.wait_listening(('127.0.0.1', port), 30)
        uri = f'zeo://127.0.0.1:{port}?{certs.client_query()}'
        assert roundtrip(uri)[0] == 1
        assert roundtrip(uri)[0] == 2
        # Without a client certificate the server refuses: a bounded
        # wait, then a clear error, not a hang.
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as info:
            roundtrip(
                f'zeo://127.0.0.1:{port}?{certs.client_query(None)}',
                **{'zeostore.connect_timeout': '1'},
            )
        assert time.monotonic() - started < 10
        assert f'127.0.0.1:{port} within' in str(info.value)
    finally:
        zeoserver.stop_process(proc)


def test_several_addresses_reach_the_live_one(zeo_server, tmp_path):
    dead = tmp_path / 'nobody.sock'
    uri = f'zeo://{dead}?addresses={zeo_server.sock}'
    assert roundtrip(uri)[0] == 1


def test_server_sync_reaches_the_client_storage(zeo_server):
    value, storage = roundtrip(zeo_server.uri(server_sync='true'))
    assert storage.server_sync is True
    value, storage = roundtrip(zeo_server.uri())
    assert storage.server_sync is False
    assert value == 2


def test_demostorage_over_zeo_keeps_changes_local(zeo_server):
    uri = zeo_server.uri()
    assert roundtrip(uri)[0] == 1
    value, storage = roundtrip(uri + '?demostorage=true')
    assert value == 2
    assert roundtrip(uri)[0] == 2  # the demo write never reached ZEO

