"""The ready app's startup check, with in-memory databases."""

from __future__ import annotations

import pytest
from pyramid.config import Configurator
from ZEO.Exceptions import ClientDisconnected

from pyramid_zeostore import DatabaseUnavailable
from pyramid_zeostore import app as ready_app


def registry():
    config = Configurator(settings={'zodb_uri': 'memory://'})
    config.include('pyramid_zeostore')
    config.commit()
    return config.registry


def test_count_users_bootstraps_and_closes():
    from pyramid_zeostore.connection import get_databases

    reg = registry()
    assert ready_app.count_users(reg) == 0
    assert not get_databases(reg).is_open


def test_a_server_lost_during_the_check_is_unavailable(monkeypatch):
    """A worker booting as ZEO stops: not a raw ClientDisconnected."""
    from pyramid_zeostore.connection import get_databases

    def lost(databases, appmaker, steps=None):
        databases.get('')
        raise ClientDisconnected()

    monkeypatch.setattr(ready_app, 'bootstrap_once', lost)
    reg = registry()
    with pytest.raises(DatabaseUnavailable):
        ready_app.count_users(reg)
    assert not get_databases(reg).is_open
