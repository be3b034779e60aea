"""Per-request metrics over a real FileStorage, through WebTest."""

from __future__ import annotations

import logging
import sys

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from webtest import TestApp
from ZODB.POSException import ConflictError

from pyramid_zeostore import Folder, parse_settings
from pyramid_zeostore.app.content import Item
from pyramid_zeostore.databases import close_all
from pyramid_zeostore.interfaces import IZODBRequestMetrics
from pyramid_zeostore.metrics import Prometheus

ITEMS = 10


def appmaker(zodb_root):
    if 'app_root' not in zodb_root:
        root = zodb_root['app_root'] = Folder()
        for n in range(ITEMS):
            root.add(f'i{n}', Item(value=0))
    return zodb_root['app_root']


def touch(context, request):
    """Load ``?read=K`` items and change ``?write=M`` of them."""
    reads = int(request.params.get('read', 0))
    writes = int(request.params.get('write', 0))
    for n in range(max(reads, writes)):
        item = context[f'i{n}']
        if n < writes:
            item.value += 1
        else:
            item.value  # noqa: B018 - a load
    return {'ok': True}


def conflicting(context, request):
    """Conflicts on its first ``?fail=N`` attempts."""
    context['i0'].value += 1
    if request.environ.get('retry.attempt', 0) < int(request.params['fail']):
        raise ConflictError('forced')
    return {'ok': True}


def make_app(tmp_path, **settings):
    settings = {
        # No cache kept between requests: each starts from ghosts, so
        # its loads are exactly what it touches.
        'zodb_uri': f'file://{tmp_path}/Data.fs?connection_cache_size=0',
        'zeostore.appmaker': 'tests.unit.test_metrics.appmaker',
        'zeostore.metrics': 'true',
        'zeostore.conflict_lock': 'false',
        'zeostore.retry_backoff': '0',
        **settings,
    }
    seen = []
    with Configurator(settings=settings) as config:
        config.include('pyramid_zeostore')
        config.add_view(touch, name='touch', renderer='json')
        config.add_view(conflicting, name='conflict', renderer='json',
                        request_method='POST')
        config.add_view(lambda r: {'ok': 1}, name='nodb', renderer='json',
                        context=None.__class__)
        config.add_subscriber(lambda e: seen.append(e.metrics),
                              IZODBRequestMetrics)
    return TestApp(config.make_wsgi_app()), seen


@pytest.fixture(autouse=True)
def closed():
    yield
    close_all()


def test_loads_and_stores_match_what_the_view_did(tmp_path):
    app, seen = make_app(tmp_path)
    app.get('/@@touch')  # bootstraps; warms up
    # The root factory loads the ZODB root and the app root folder; the
    # view then loads the folder's BTree and one record per item.
    app.get('/@@touch')
    base = seen[-1]
    assert (base.loads, base.stores) == (2, 0)
    app.get('/@@touch?read=6')
    six = seen[-1]
    assert (six.loads, six.stores) == (2 + 1 + 6, 0)
    app.post('/@@touch?write=3')
    three = seen[-1]
    assert (three.loads, three.stores) == (2 + 1 + 3, 3)
    assert three.committed and three.commit_seconds > 0
    assert (three.method, three.path, three.status) == (
        'POST', '/@@touch', 200
    )
    assert three.conflicts == three.retries == 0 and three.attempts == 1
    assert three.seconds >= three.commit_seconds


def test_conflicts_and_retries_are_summed_over_attempts(tmp_path):
    app, seen = make_app(tmp_path, **{'retry.attempts': 3})
    app.get('/@@touch')
    app.post('/@@conflict?fail=2')
    m = seen[-1]
    assert (m.conflicts, m.retries, m.attempts) == (2, 2, 3)
    assert m.stores == 1 and m.committed and m.status == 200
    # spent: a 409, reported once with every attempt
    app.post('/@@conflict?fail=5', status=409)
    m = seen[-1]
    assert (m.conflicts, m.retries, m.attempts, m.status) == (3, 2, 3, 409)
    assert not m.committed


def test_requests_without_a_connection_have_no_metrics(tmp_path):
    app, seen = make_app(tmp_path)
    app.get('/@@health')
    assert seen == []


def test_slow_requests_are_logged(tmp_path, caplog):
    app, seen = make_app(
        tmp_path, **{'zeostore.metrics': 'false',
                     'zeostore.slow_request_log': '0'}
    )
    with caplog.at_level(logging.WARNING, 'pyramid_zeostore.metrics'):
        app.post('/@@touch?write=2')
    assert seen  # the event goes out whenever metrics are collected
    (record,) = [r for r in caplog.records if 'slow request' in r.message]
    assert 'POST /@@touch 200' in record.message
    assert 'stores=2 conflicts=0 retries=0' in record.message


def test_nothing_is_collected_by_default(tmp_path):
    app, seen = make_app(tmp_path, **{'zeostore.metrics': 'false'})
    app.get('/@@touch?write=1')
    assert seen == []


def test_prometheus_endpoint(tmp_path, monkeypatch):
    monkeypatch.delenv('PROMETHEUS_MULTIPROC_DIR', raising=False)
    app, seen = make_app(
        tmp_path, **{'zeostore.prometheus_path': '/@@metrics'}
    )
    app.get('/@@touch?write=2')
    app.get('/@@touch?write=1')
    res = app.get('/@@metrics')
    assert res.headers['Content-Type'].startswith('text/plain; version=')
    text = res.text
    assert 'zodb_requests_total{method="GET"} 2.0' in text
    assert 'zodb_stores_total{method="GET"} 3.0' in text
    assert 'zodb_commit_seconds_count{method="GET"} 2.0' in text


def test_prometheus_multiprocess(tmp_path, monkeypatch):
    directory = tmp_path / 'prom'
    directory.mkdir()
    monkeypatch.setenv('PROMETHEUS_MULTIPROC_DIR', str(directory))
    prometheus = Prometheus()
    body, _ = prometheus.exposition()
    assert isinstance(body, bytes)


def test_prometheus_needs_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'prometheus_client', None)
    with pytest.raises(ImportError, match=r'pyramid_zeostore\[metrics\]'):
        Prometheus()


def test_settings():
    parsed = parse_settings({
        'zodb_uri': 'memory://',
        'zeostore.slow_request_log': '0.5',
        'zeostore.prometheus_path': '/metrics',
    })
    assert parsed.slow_request_log == 0.5
    assert parsed.prometheus_path == '/metrics'
    assert not parsed.metrics
    off = parse_settings({'zodb_uri': 'memory://',
                          'zeostore.slow_request_log': 'off'})
    assert off.slow_request_log is None and off.prometheus_path is None
    with pytest.raises(ConfigurationError, match='slow_request_log'):
        parse_settings({'zodb_uri': 'memory://',
                        'zeostore.slow_request_log': '-1'})
    with pytest.raises(ConfigurationError, match='prometheus_path'):
        parse_settings({'zodb_uri': 'memory://',
                        'zeostore.prometheus_path': 'metrics'})


def test_a_connection_outside_a_transaction_is_still_counted():
    import transaction
    from pyramid import testing

    from pyramid_zeostore.metrics import METRICS, Collector, RequestMetrics

    class Conn:
        connections: dict = {}

    request = testing.DummyRequest()
    request.tm = transaction.TransactionManager(explicit=True)  # none begun
    request.environ[METRICS] = RequestMetrics('GET', '/')
    event = testing.DummyResource(request=request, conn=Conn())
    Collector(None, None, None).opened(event)
    assert request.environ[METRICS].attempts == 1
