"""The pytest plugin's own URI, ``demo:(zeo://...)/(memory://)``, over a
real ZEO server: the package's zeo resolver serves its base, so
``connect_timeout`` bounds the wait and ``server_sync`` applies."""

from __future__ import annotations

import time

import pytest
import transaction

from pyramid_zeostore import Databases, DatabaseUnavailable
from pyramid_zeostore.probe import client_storage


def demo(server, **params):
    return f'demo:({server.uri(**params)})/(memory://)'


def test_a_stopped_server_fails_within_the_connect_timeout(zeo_server):
    uri = demo(zeo_server, read_only=1)
    zeo_server.stop()
    databases = Databases.from_uri(uri, connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info:
        databases.get()
    # A hang guard, not a speed test: zodburi's own zeo resolver gave the
    # base ClientStorage its default wait of 30 s, and no diagnosis.
    assert time.monotonic() - started < 15
    assert info.value.zeo and zeo_server.sock in str(info.value)
    assert 'No such file or directory' in info.value.reason


def test_server_sync_reaches_the_client_of_the_base(zeo_server):
    databases = Databases.from_uri(
        demo(zeo_server, server_sync='true'), connect_timeout=5
    )
    try:
        db = databases.get()
        client = client_storage(db.storage)
        assert client is not None and client.is_connected()
        assert client.server_sync is True
        tm = transaction.TransactionManager(explicit=True)
        tm.begin()
        conn = db.open(transaction_manager=tm)
        conn.root()['x'] = 1
        tm.commit()
        conn.close()
    finally:
        databases.close()
