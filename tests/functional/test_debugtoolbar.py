"""The ZODB panel of pyramid_debugtoolbar, read from the toolbar's page
for requests with known loads, stores and conflicts, over a real ZEO
server (``runzeo`` on a Unix socket), through WebTest.

The app (:mod:`tests.functional.toolbarapp`) empties the connection's
cache before each request's first read, so a request loads exactly what
it touches.
"""

from __future__ import annotations

import re

import bs4
import pytest
import webtest

from pyramid_zeostore import ZODBConnectionClosed, get_databases
from pyramid_zeostore.debugtoolbar.collect import KEY, WRAPPED
from tests.functional import toolbarapp

LOCAL = {'REMOTE_ADDR': '127.0.0.1'}
ROOT = ('persistent.mapping.PersistentMapping', f'{0:016x}', '')


def item(name: str, oid: int) -> tuple[str, str, str]:
    return ('tests.functional.toolbarapp.Item', f'{oid:016x}', f'/{name}')


BOX = ('tests.functional.toolbarapp.Box', f'{1:016x}', '/')
# The appmaker creates the box, then a, b, c: oids 1, 2, 3, 4.
A, B, C = item('a', 2), item('b', 3), item('c', 4)


@pytest.fixture
def closed():
    """What each closed connection still had of the panel's wrappers."""
    return []


@pytest.fixture(params=[False, True], ids=['zeostore-first', 'toolbar-first'])
def client(request, zeo_server, closed):
    def configure(config):
        def seen(event):
            closed.append(set(WRAPPED) & set(vars(event.conn)))

        config.add_subscriber(seen, ZODBConnectionClosed)

    app = toolbarapp.make_app(
        {'zodb_uri': zeo_server.uri()}, toolbar_first=request.param,
        configure=configure,
    )
    try:
        yield webtest.TestApp(app, extra_environ=LOCAL)
    finally:
        get_databases(app.registry).close()


def panel(client, response, badge: str | None = None) -> bs4.BeautifulSoup:
    """The ZODB panel's content on the toolbar page of ``response``'s
    request (the link the toolbar injected); its tab's badge (loads/stores
    of that attempt) is ``badge`` if given."""
    url = re.search(
        r'id="pShowToolBarButton"\s+href="([^"]+)"', response.text
    ).group(1)
    page = client.get(url)
    soup = bs4.BeautifulSoup(page.text, 'html.parser')
    tab = soup.find(id='pDebugPanel-zodb')
    assert tab is not None and 'ZODB' in tab.get_text()
    if badge is not None:
        assert text(tab.find(class_='badge')) == badge
    content = soup.find(id='pDebugPanel-zodb-content')
    assert content is not None
    return content


def text(node) -> str:
    return ' '.join(node.get_text(' ').split())


def rows(content, kind: str, attempt: int) -> list[tuple[str, str, str]]:
    table = content.find(
        'table', class_=f'zodb-{kind}', attrs={'data-attempt': str(attempt)}
    )
    if table is None:
        return []
    return [
        tuple(text(tr.find('td', class_=c))
              for c in ('zodb-class', 'zodb-oid', 'zodb-path'))
        for tr in table.find_all('tr', class_='zodb-row')
    ]


def detail(content, attempt: int, css: str) -> str:
    block = content.find('div', class_='zodb-attempt-detail',
                         attrs={'data-attempt': str(attempt)})
    return text(block.find(class_=css))


def summary(content) -> list[dict]:
    return [
        {
            'attempt': int(tr['data-attempt']),
            'outcome': tr['data-outcome'],
            'path': text(tr.find(class_='zodb-path-taken')),
            'loads': int(text(tr.find(class_='zodb-loads-count'))),
            'stores': int(text(tr.find(class_='zodb-stores-count'))),
            'error': text(tr.find(class_='zodb-error')),
        }
        for tr in content.find_all('tr', class_='zodb-attempt')
    ]


def test_a_fast_read_lists_its_loads(client, closed):
    response = client.get('/@@read')
    assert response.text.startswith('<html><body><p>Item a, Item b')
    content = panel(client, response, badge='5/0')
    assert summary(content) == [{
        'attempt': 0, 'outcome': 'won', 'path': 'fast read', 'loads': 5,
        'stores': 0, 'error': '',
    }]
    assert rows(content, 'loads', 0) == [ROOT, BOX, A, B, C]
    assert rows(content, 'stores', 0) == []
    assert 'fast read' in detail(content, 0, 'zodb-read-path')
    assert detail(content, 0, 'zodb-sync').startswith(
        'no zeostore_sync cookie')
    assert detail(content, 0, 'zodb-tpc') == 'none'
    assert detail(content, 0, 'zodb-db-loads').startswith('5 in ')
    assert 'primary (zodb_uri)' in text(content)
    # the kept connection went back with nothing of the panel's on it
    assert closed == [set()]


def test_the_sync_cookie_makes_a_fast_read_sync_first(client):
    wrote = client.post('/b/@@bump')
    assert 'zeostore_sync=1' in wrote.headers['Set-Cookie']
    content = panel(client, wrote)
    assert detail(content, 0, 'zodb-sync').startswith(
        'the answer sets zeostore_sync')
    assert rows(content, 'stores', 0) == [B]
    # WebTest's cookie jar sends it back
    response = client.get('/@@read')
    content = panel(client, response)
    assert summary(content)[0]['path'] == 'fast read'
    assert detail(content, 0, 'zodb-sync').startswith(
        'zeostore_sync sent: synced with the server(s)')


def test_a_retried_write_shows_the_conflict_and_the_attempt_that_won(
    client, closed
):
    response = client.post('/a/@@bump?conflict=1')
    assert 'a: 101' in response.text  # +100 by the other, +1 on retry
    content = panel(client, response, badge='3/1')
    first, second = summary(content)
    assert first['outcome'] == 'retried'
    assert first['error'].startswith('ConflictError: database conflict')
    assert f'oid 0x02, class {A[0]}' in first['error']
    assert second['outcome'] == 'won' and second['error'] == ''
    for attempt in (first, second):
        assert attempt['path'] == 'transaction'
        assert attempt['loads'] == 3 and attempt['stores'] == 1
    for number in (0, 1):
        assert rows(content, 'loads', number) == [ROOT, BOX, A]
        assert rows(content, 'stores', number) == [A]
        assert detail(content, number, 'zodb-note') == '/a/@@bump bump a'
        assert detail(content, number, 'zodb-user') == toolbarapp.USER
    assert detail(content, 0, 'zodb-tpc').endswith('aborted')
    assert detail(content, 1, 'zodb-tpc').endswith('committed')
    assert 'dropped: retried' in text(content.find(
        'tr', attrs={'data-attempt': '0'}))
    assert ('2 attempt(s), 1 conflict(s), 1 retry(ies); attempt 1 won'
            in text(content))
    assert closed == [set(), set()]


def test_a_request_the_toolbar_does_not_watch_is_left_alone(
    client, closed
):
    environ = {'REMOTE_ADDR': '10.1.2.3'}  # not in debugtoolbar.hosts
    response = client.get('/@@read', extra_environ=environ)
    assert 'pDebug' not in response.text
    assert KEY not in response.request.environ
    assert closed == [set()]


def test_the_panel_escapes_what_it_shows(zeo_server):
    def noted(context, request):
        request.tm.get().note('<b>bold</b>')
        context.title = 'changed'
        return toolbarapp.page('noted')

    def extra(config):
        config.add_view(noted, context=toolbarapp.Item, name='note',
                        request_method='POST')

    app = toolbarapp.make_app({'zodb_uri': zeo_server.uri()},
                              configure=extra)
    try:
        client = webtest.TestApp(app, extra_environ=LOCAL)
        content = panel(client, client.post('/a/@@note'))
        html = str(content)
        assert '&lt;b&gt;bold&lt;/b&gt;' in html
        assert '<b>bold' not in html
        assert detail(content, 0, 'zodb-note') == '/a/@@note <b>bold</b>'
    finally:
        get_databases(app.registry).close()
