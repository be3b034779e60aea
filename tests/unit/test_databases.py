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
