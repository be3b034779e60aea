"""``demo:(...)/(...)`` with a ``zeo://`` part goes through the package's
zeo resolver, so server_sync, TLS and connect_timeout apply there too."""

from __future__ import annotations

import pytest
from pyramid.exceptions import ConfigurationError
from ZODB.DemoStorage import DemoStorage
from ZODB.MappingStorage import MappingStorage

from pyramid_zeostore import Databases, parse_settings
from pyramid_zeostore.resolvers import DemoFactory, ZEOFactory, zeo_part
from pyramid_zeostore.settings import resolve


def test_a_zeo_base_of_demo_is_ours():
    factory, dbkw = resolve(
        'zodb_uri',
        'demo:(zeo:///var/zeo.sock?server_sync=true&read_only=1)/'
        '(memory://)#connection_cache_size=500',
    )
    assert isinstance(factory, DemoFactory)
    zeo = zeo_part(factory)
    assert isinstance(zeo, ZEOFactory) and zeo is factory.base
    assert zeo.kw == {'server_sync': True, 'read_only': 1}
    assert zeo.addresses == ('/var/zeo.sock',)
    assert dbkw['cache_size'] == 500


def test_a_zeo_changes_part_and_tls_count_too():
    factory, _ = resolve(
        'zodb_uri',
        'demo:(memory://)/(zeo://127.0.0.1:9100?ssl_cafile=/ca.pem)',
    )
    zeo = zeo_part(factory)
    assert zeo is factory.changes and zeo.tls.cafile == '/ca.pem'


def test_the_spec_knows_its_zeo_address_and_lock_file():
    parsed = parse_settings({'zodb_uri': 'demo:(zeo:///v/z.sock)/(memory://)'})
    spec = parsed.primary
    assert spec.is_zeo and spec.address == '/v/z.sock'
    assert parsed.lock_file == '/v/z.sock.lock'
    assert zeo_part(resolve('k', 'memory://')[0]) is None


def test_parts_open_with_the_connect_timeout(monkeypatch):
    opened = []

    def client_storage(addresses, **kw):
        opened.append((addresses, kw))
        return MappingStorage()

    monkeypatch.setattr(
        'pyramid_zeostore.resolvers.ClientStorage', client_storage
    )
    databases = Databases.from_uri(
        'demo:(zeo:///v/z.sock?server_sync=true)/(memory://)',
        connect_timeout=0.25,
    )
    try:
        storage = databases.get().storage
        assert isinstance(storage, DemoStorage)
        assert opened == [
            (['/v/z.sock'], {'wait_timeout': 0.25, 'server_sync': True})
        ]
    finally:
        databases.close()


def test_nested_and_plain_parts():
    factory, _ = resolve(
        'zodb_uri', 'demo:(demo:(zeo:///a.sock)/(memory://))/(memory://)'
    )
    assert zeo_part(factory).addresses == ('/a.sock',)
    plain, _ = resolve('zodb_uri', 'demo:(memory://a)/(memory://b)')
    assert zeo_part(plain) is None
    storage = plain()
    try:
        assert isinstance(storage, DemoStorage)
    finally:
        storage.close()


@pytest.mark.parametrize('uri, words', [
    ('demo:(zeo:///a.sock?connection_cache_size=5)/(memory://)',
     'DB parameters go after "#"'),
    ('demo:(memory://?connection_pool_size=2)/(memory://)',
     'DB parameters go after "#"'),
    ('demo:(zeo:///a.sock?debug=1)/(memory://)', 'ZEO 6 has no debug'),
    ('demo:(nosuch://x)/(memory://)', 'zodburi resolver provides'),
    ('demo:(memory://)/(memory://)#bogus=1', 'unknown URI parameter'),
])
def test_bad_demo_uris_name_the_key(uri, words):
    with pytest.raises(ConfigurationError) as info:
        resolve('zodb_uri.cat', uri)
    assert info.value.key == 'zodb_uri.cat'
    assert words in str(info.value)
