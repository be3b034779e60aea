"""Databases: its interface, and how it is built from settings or a URI."""

from __future__ import annotations

import pytest
from pyramid.exceptions import ConfigurationError
from zope.interface.verify import verifyClass, verifyObject

from pyramid_zeostore import Databases, IDatabases
from pyramid_zeostore.interfaces import IDatabases as Interface


def test_databases_provide_the_whole_interface():
    assert Interface is IDatabases
    verifyClass(IDatabases, Databases)
    databases = Databases.from_uri('memory://')
    verifyObject(IDatabases, databases)
    # what callers use is declared (the interface is the contract)
    declared = set(IDatabases.names())
    assert {
        'specs', 'names', 'connect_timeout', 'is_open', 'bootstrapped',
        'spec', 'get', 'wait_connected', 'unavailable',
        'disconnected_exceptions', 'sync', 'sync_all', 'close',
    } == declared


def test_from_uri_and_from_settings(tmp_path):
    one = Databases.from_uri('memory://', connect_timeout=0.5)
    assert one.names == ('',) and one.connect_timeout == 0.5
    assert not one.is_open
    many = Databases.from_settings({
        'zodb_uri': 'memory://a',
        'zodb_uri.cat': 'memory://b',
        'zeostore.connect_timeout': '3',
    })
    assert many.names == ('', 'cat') and many.connect_timeout == 3.0
    assert many.spec('cat').key == 'zodb_uri.cat'
    with pytest.raises(KeyError):
        many.spec('dog')
    try:
        assert many.get('cat').database_name == 'cat'
        assert many.is_open
    finally:
        many.close()
    assert not many.is_open


def test_from_settings_without_a_uri_names_the_key():
    with pytest.raises(ConfigurationError) as info:
        Databases.from_settings({})
    assert info.value.key == 'zodb_uri'


def test_a_file_in_a_missing_folder_names_the_key(tmp_path):
    dbs = Databases.from_uri(f'file://{tmp_path}/nosuch/Data.fs')
    with pytest.raises(ConfigurationError) as info:
        dbs.get()
    assert info.value.key == 'zodb_uri'
    text = str(info.value)
    assert 'expected paths that exist' in text and 'nosuch' in text
    assert not dbs.is_open


def test_a_blob_dir_in_a_missing_folder_names_the_key(tmp_path):
    dbs = Databases.from_settings({
        'zodb_uri': 'memory://',
        'zodb_uri.cat': (f'file://{tmp_path}/Cat.fs'
                         f'?blobstorage_dir={tmp_path}/a/file/blobs'),
    })
    (tmp_path / 'a').write_text('a file, not a folder')
    with pytest.raises(ConfigurationError) as info:
        dbs.get()
    assert info.value.key == 'zodb_uri.cat'
    assert 'expected paths that exist' in str(info.value)


@pytest.mark.parametrize('name, text, expected', [
    ('ZODB.POSException.ReadOnlyError', (), 'read_only=true'),
    ('builtins.RuntimeError', ('odd',), 'it refused: RuntimeError: odd'),
])
def test_other_refusals_name_the_key_and_the_reason(
    monkeypatch, name, text, expected
):
    from pyramid_zeostore import compat, databases

    class ServerException(Exception):
        pass

    monkeypatch.setattr(compat, 'registration_failure',
                        lambda storage, addresses: ServerException(name, text))
    dbs = Databases.from_uri('zeo://127.0.0.1:9?storage=main')
    error = databases.refused_registration(dbs.spec(''))
    assert isinstance(error, ConfigurationError)
    assert error.key == 'zodb_uri' and expected in str(error)
