"""One set of safe methods, taken alike by every layer (TRACE included)."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
from pyramid.config import Configurator
from webtest import TestApp

from pyramid_zeostore import environ, get_connection
from pyramid_zeostore.databases import close_all
from pyramid_zeostore.errorviews import unavailable_view
from pyramid_zeostore.exceptions import DatabaseUnavailable
from pyramid_zeostore.tweens import SYNC_SET_COOKIE


@pytest.fixture(autouse=True)
def closed():
    yield
    close_all()


def test_the_safe_methods_are_those_of_rfc_9110():
    assert environ.SAFE_METHODS == {'GET', 'HEAD', 'OPTIONS', 'TRACE'}
    assert environ.HEALTH_METHODS <= environ.SAFE_METHODS


def looked(context, request):
    get_connection(request)
    return {
        'fast': environ.FAST in request.environ,
        'lock': request.environ.get('test.lock_held'),
    }


def make_app(tmp_path, **settings):
    config = Configurator(settings={
        'zodb_uri': f'file://{tmp_path}/Data.fs',
        'zeostore.lock_file': str(tmp_path / 'lock'),
        **settings,
    })
    config.include('pyramid_zeostore')
    config.add_view(looked, name='look', renderer='json')
    return TestApp(config.make_wsgi_app())


@pytest.mark.parametrize('method', sorted(environ.SAFE_METHODS - {'HEAD'}))
def test_a_safe_method_is_a_fast_read_without_the_lock_or_cookie(
    tmp_path, method, monkeypatch
):
    held = record_holds(monkeypatch)
    app = make_app(tmp_path)
    res = app.request('/@@look', method=method)
    assert res.json == {'fast': True, 'lock': None}
    assert 'Set-Cookie' not in res.headers
    assert held == []


def test_an_unsafe_method_takes_the_lock_and_sets_the_cookie(
    tmp_path, monkeypatch
):
    held = record_holds(monkeypatch)
    app = make_app(tmp_path)
    res = app.request('/@@look', method='PUT')
    assert res.json['fast'] is False
    assert res.headers['Set-Cookie'] == SYNC_SET_COOKIE
    assert held == ['shared']


def record_holds(monkeypatch):
    """The host lock's holds, by mode, from now on (none taken)."""
    held = []
    for mode in ('shared', 'exclusive', 'queued'):
        monkeypatch.setattr(
            f'pyramid_zeostore.contention.HostLock.{mode}',
            lambda self, *a, mode=mode: held.append(mode) or nullcontext(),
        )
    return held


@pytest.mark.parametrize('method, saved', [
    ('TRACE', 'nothing was saved'),
    ('OPTIONS', 'nothing was saved'),
    ('POST', 'may or may not have been saved'),
])
def test_a_503_of_a_safe_method_says_nothing_was_saved(
    tmp_path, method, saved
):
    app = make_app(tmp_path)
    request = app.app.request_factory.blank('/', method=method)
    request.registry = app.app.registry
    request.environ[environ.UNAVAILABLE] = True
    response = unavailable_view(
        DatabaseUnavailable('', '/s', 1.0), request
    )
    assert response.status_int == 503
    assert saved in response.detail
