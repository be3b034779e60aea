"""History, transactions, undo and the database page of the object
browser, over a real ZEO server (FileStorage behind it).

The ready app with a manager; pages fetched and forms posted with
WebTest as a browser would (session login, the page's CSRF token,
same-origin ``Origin``). Checked: an object's revisions and a comparison
of two, also of an object whose class must not run; the undo log with
its users and notes; undo that brings a deleted item back, and one that
cannot be done answered on the page (409) with nothing changed; the
figures of the primary and a named database, and packing.
"""

from __future__ import annotations

import datetime
import html
import os
import re
import signal
import time

import pytest
from persistent import Persistent
from persistent.mapping import PersistentMapping

from pyramid_zeostore import Folder, get_databases
from pyramid_zeostore.app.content import Item
from pyramid_zeostore.app.users import add_user

from .managesupport import (
    BOSS,
    ORIGIN,
    app_root,
    last_transaction,
    login,
    make_router,
)


class Strange(Persistent):
    """An app class whose code must never run on the history page."""

    def __setstate__(self, state):  # pragma: no cover - must not run
        raise AssertionError('the history page ran __setstate__')

    def __repr__(self):  # pragma: no cover - must not be called
        raise AssertionError('the history page ran __repr__')

    def __eq__(self, other):  # pragma: no cover - must not be called
        raise AssertionError('the history page ran __eq__')

    __hash__ = Persistent.__hash__

    @property
    def dangerous(self):  # pragma: no cover - must not be called
        raise AssertionError('the history page ran a property')


class Opaque:
    """A plain value of an app class, inside a persistent object."""

    def __init__(self, n):
        self.n = n

    def __setstate__(self, state):  # pragma: no cover - must not run
        raise AssertionError('the history page ran __setstate__')

    def __eq__(self, other):  # pragma: no cover - must not be called
        raise AssertionError('the history page ran __eq__')

    __hash__ = object.__hash__


@pytest.fixture
def router(zeo_server):
    router = make_router(zeo_server.uri())
    yield router
    get_databases(router.registry).close()


@pytest.fixture
def boss(router):
    return login(router, *BOSS)


def commit(tm, note, user='script'):
    txn = tm.get()
    txn.note(note)
    txn.user = user
    tm.commit()


def text_of(res) -> str:
    return html.unescape(re.sub(r'<[^>]+>', ' ', res.text))


def test_history_lists_revisions_and_compares_two(router, boss):
    conn, tm, root = app_root(router)
    try:
        root['doc'] = Item(title='First', n=1, gone='soon')
        commit(tm, 'made doc', user='alice')
        root['doc'].title = 'Second'
        root['doc'].n = 2
        del root['doc'].gone
        root['doc'].added = [1, 2]
        commit(tm, 'edited doc', user='bob')
    finally:
        conn.close()
    # the edit form adds a third revision, noted by the browser
    form = boss.get('/doc/@@manage').forms['edit-form']
    form['attribute'], form['type'], form['value'] = 'title', 'str', 'Third'
    form.submit(headers=ORIGIN, status=303)
    page = boss.get('/doc/@@manage')
    assert '/doc/@@manage-history' in page.text  # the object page links
    res = boss.get('/doc/@@manage-history')
    text = text_of(res)
    assert 'History of /doc' in text
    rows = re.findall(r'<tr id="rev-([0-9a-f]{16})"', res.text)
    assert len(rows) == 3
    for expected in ('alice', 'bob', 'boss', 'made doc', 'edited doc',
                     'set title of /doc', 'created',
                     'pyramid_zeostore.app.content.Item'):
        assert expected in text, expected
    # by default the last two are compared: title Second -> Third
    diff = res.html.find(id='diff-table')
    cells = [[td.get_text(' ', strip=True) for td in tr.find_all('td')]
             for tr in diff.find('tbody').find_all('tr')]
    assert cells == [['title', 'changed', 'Second', 'Third']]
    # the first two: gone removed, added added, n and title changed
    res = boss.get('/doc/@@manage-history',
                   {'a': rows[2], 'b': rows[1]})
    diff = res.html.find(id='diff-table')
    cells = {tr.find('td').get_text(strip=True):
             [td.get_text(' ', strip=True) for td in tr.find_all('td')][1:]
             for tr in diff.find('tbody').find_all('tr')}
    assert cells == {
        'added': ['added', '', '1 2'],
        'gone': ['removed', 'soon', ''],
        'n': ['changed', '1', '2'],
        'title': ['changed', 'First', 'Second'],
    }
    # the comparison form names both
    form = res.forms['diff-form']
    assert (form['a'].value, form['b'].value) == (rows[2], rows[1])
    boss.get('/doc/@@manage-history', {'a': 'zz', 'b': rows[0]}, status=400)
    boss.get('/doc/@@manage-history', {'a': '0' * 16, 'b': rows[0]},
             status=400)


def test_history_of_an_object_whose_class_must_not_run(router, boss):
    conn, tm, root = app_root(router)
    try:
        item = root['holder'] = Item()
        item.strange = Strange()
        item.strange.secret = 'one'
        item.strange.opaque = Opaque(1)
        item.strange.when = datetime.date(2024, 5, 1)
        item.mapping = PersistentMapping(x=1)
        commit(tm, 'strange one')
        item.strange.secret = '<b>two</b>'
        item.strange.opaque = Opaque(2)
        commit(tm, 'strange two')
        oid = f"{int.from_bytes(item.strange._p_oid, 'big'):016x}"
        mapping = f"{int.from_bytes(item.mapping._p_oid, 'big'):016x}"
    finally:
        conn.close()
    # an object without a path links to its history by oid
    page = boss.get(f'/@@manage/oid/{mapping}')
    link = page.html.find('a', string='History')['href']
    assert link == f'http://localhost/@@manage-history?oid={mapping}'
    assert 'History of oid ' + mapping in boss.get(link).text
    # the holder's history links to it by oid, by its class's name
    res = boss.get('/holder/@@manage-history')
    assert f'/@@manage/oid/{oid}' in res.text
    assert 'tests.functional.test_manage_history.Strange' in res.text
    res = boss.get('/@@manage-history', {'oid': oid})
    text = text_of(res)
    assert f'History of oid {oid}' in text
    assert 'tests.functional.test_manage_history.Strange' in text
    assert '<b>two</b>' not in res.text and '&lt;b&gt;two&lt;/b&gt;' in (
        res.text)
    assert '<tests.functional.test_manage_history.Opaque>' in text
    assert '2024-05-01' in text
    diff = res.html.find(id='diff-table')
    names = [tr.find('td').get_text(strip=True)
             for tr in diff.find('tbody').find_all('tr')]
    assert names == ['opaque', 'secret']
    boss.get('/@@manage-history', {'oid': 'zz'}, status=404)
    boss.get('/@@manage-history', {'oid': '7fffffffffffffff'}, status=404)


def test_transactions_show_notes_users_and_paths(router, boss):
    form = boss.get('/@@manage').forms['add-form']
    form['name'], form['kind'] = 'docs', 'folder'
    form.submit(headers=ORIGIN, status=303)
    form = boss.get('/docs/@@manage').forms['add-form']
    form['name'], form['kind'] = 'x', 'item'
    form.submit(headers=ORIGIN, status=303)
    res = boss.get('/@@manage-transactions')
    text = text_of(res)
    assert 'added item /docs/x' in text and 'added folder /docs' in text
    assert 'boss' in text
    assert 'href="http://localhost/docs/x/@@manage"' in res.text
    assert 'undo-form-0' in res.forms and 'undo-form-1' in res.forms
    assert res.forms['undo-form-0']['id'].value
    boss.get('/@@manage-transactions', {'first': 'x'}, status=400)
    root_history = boss.get('/@@manage-history')  # the root's own
    assert 'History of /' in root_history.text
    assert '<tr id="rev-' in root_history.text
    boss.get('/@@manage-transactions', {'db': 'nope'}, status=404)
    # paged: 20 a page, the next by ?first=
    conn, tm, root = app_root(router)
    try:
        for i in range(25):
            root['docs'][f'n{i}'] = Item()
            commit(tm, f'script {i}')
    finally:
        conn.close()
    first = boss.get('/@@manage-transactions')
    assert 'script 24' in first.text and 'script 4' not in first.text
    older = first.click('Older')
    assert 'script 4' in older.text and 'script 24' not in older.text
    assert 'undo-form-0' in older.forms
    assert 'Newer' in older.text


def test_undo_a_delete_brings_the_item_back(router, boss):
    conn, tm, root = app_root(router)
    try:
        root['docs'] = Folder()
        root['docs']['x'] = Item(title='Kept')
        commit(tm, 'made docs')
    finally:
        conn.close()
    confirm = boss.get('/docs/@@manage-delete', {'name': 'x'})
    confirm.forms['delete-form'].submit(headers=ORIGIN, status=303)
    boss.get('/docs/x', status=404)
    page = boss.get('/@@manage-transactions')
    notes = [td.get_text(strip=True) for td in
             page.html.select('#transactions tbody tr td:nth-of-type(4)')]
    assert notes[0] == 'deleted /docs/x'
    res = page.forms['undo-form-0'].submit(headers=ORIGIN, status=303)
    assert '@@manage-transactions' in res.location
    done = res.follow()
    assert 'The transaction was undone' in done.text
    assert 'undid "deleted /docs/x"' in text_of(done)
    entry = last_transaction(router)
    assert entry['user_name'] in (b'boss', 'boss')
    assert 'undid "deleted /docs/x"' in str(entry['description'])
    item = boss.get('/docs/x', headers={'Accept': 'application/json'})
    assert 'Kept' in item.text
    conn, tm, root = app_root(router)
    try:
        assert root['docs']['x'].title == 'Kept'
    finally:
        conn.close()


def test_an_undo_that_conflicts_is_409_and_changes_nothing(router, boss):
    conn, tm, root = app_root(router)
    try:
        root['doc'] = Item(title='one')
        commit(tm, 'made doc')
        root['doc'].title = 'two'
        commit(tm, 'doc two')
        root['doc'].title = 'three'
        commit(tm, 'doc three')
    finally:
        conn.close()
    before = last_transaction(router)
    page = boss.get('/@@manage-transactions')
    notes = [td.get_text(strip=True) for td in
             page.html.select('#transactions tbody tr td:nth-of-type(4)')]
    assert notes[:2] == ['doc three', 'doc two']
    res = page.forms['undo-form-1'].submit(headers=ORIGIN, status=409)
    assert res.content_type == 'text/html'
    alert = res.html.find(attrs={'role': 'alert'})
    assert alert is not None
    message = alert.get_text(' ', strip=True)
    assert 'Cannot undo "doc two"' in message
    assert 'modified by a later transaction' in message
    assert 'Nothing was changed' in message
    assert 'Traceback' not in res.text
    assert last_transaction(router)['id'] == before['id']
    conn, tm, root = app_root(router)
    try:
        assert root['doc'].title == 'three'
    finally:
        conn.close()
    # a made-up id: the same page, 409; a malformed one: 400
    page = boss.get('/@@manage-transactions')
    token = page.forms['undo-form-0']['csrf_token'].value
    res = boss.post('/@@manage-undo', {'id': b'nonsense'.hex(),
                                       'csrf_token': token},
                    headers=ORIGIN, status=409)
    assert 'not in the undo log' in res.html.find(
        attrs={'role': 'alert'}).get_text()
    boss.post('/@@manage-undo', {'id': 'zz', 'csrf_token': token},
              headers=ORIGIN, status=400)
    assert last_transaction(router)['id'] == before['id']


def test_only_managers_see_history_and_undo(router):
    add_user(get_databases(router.registry).get(''), 'ed', 'pw-ed-12',
             'editor')
    editor = login(router, 'ed', 'pw-ed-12')
    editor.get('/@@manage-history', status=403)
    editor.get('/@@manage-transactions', status=403)
    editor.get('/@@manage-database', status=403)
    boss = login(router, 'boss', 'pw-boss-1')
    page = boss.get('/@@manage-transactions')
    form = page.forms['undo-form-0']
    editor.post('/@@manage-undo', {'id': form['id'].value,
                                   'csrf_token': form['csrf_token'].value},
                headers=ORIGIN, status=403)
    # no token, no undo
    boss.post('/@@manage-undo', {'id': form['id'].value}, headers=ORIGIN,
              status=403)


def two_revisions(router) -> bytes:
    """The oid of ``/doc``, an Item committed twice ("one", "two")."""
    conn, tm, root = app_root(router)
    try:
        root['doc'] = Item(n=1)
        commit(tm, 'one')
        root['doc'].n = 2
        commit(tm, 'two')
        return root['doc']._p_oid
    finally:
        conn.close()


def test_database_page_and_pack_of_two_databases(zeo_server):
    router = make_router(zeo_server.uri(),
                         **{'zodb_uri.other': 'memory://'})
    try:
        boss = login(router, 'boss', 'pw-boss-1')
        oid = two_revisions(router)
        db = get_databases(router.registry).get('')
        assert len(db.history(oid, size=10)) == 2
        page = boss.get('/@@manage-database')
        first = page.html.find(id='db-0').get_text(' ', strip=True)
        second = page.html.find(id='db-1').get_text(' ', strip=True)
        assert 'ZEO.ClientStorage.ClientStorage' in first
        assert str(zeo_server.sock) in first
        assert re.search(r'Round trip [\d.]+ ms', first)
        assert re.search(r'Objects \d+', first)
        assert 'by script: two' in first
        assert 'ZODB.MappingStorage.MappingStorage' in second
        assert 'up' in second
        assert re.search(r'\d+ open of \d+', first)
        assert 'other' in page.html.find(id='db-1-title').get_text()
        assert 'db=other' in page.text  # its transactions
        none = boss.get('/@@manage-transactions', {'db': 'other'})
        assert 'keeps no undo log' in none.text
        # a bad number of days: the same page, 400, nothing packed
        form = page.forms['pack-form-0']
        form['days'] = '-1'
        res = form.submit(headers=ORIGIN, status=400)
        assert 'expected a number of days from 0 to 3650' in res.text
        assert 'aria-invalid="true"' in res.text
        assert len(db.history(oid, size=10)) == 2
        form = res.forms['pack-form-0']
        form['days'] = 'soon'
        form.submit(headers=ORIGIN, status=400)
        # pack the primary: only the current revision stays
        form = boss.get('/@@manage-database').forms['pack-form-0']
        form['days'] = '0'
        res = form.submit(headers=ORIGIN, status=303)
        assert 'packed=' in res.location
        done = res.follow()
        assert re.search(r'Packed main: done in [\d.]+ s', done.text)
        assert len(db.history(oid, size=10)) == 1
        history = boss.get('/doc/@@manage-history')
        assert len(re.findall(r'<tr id="rev-', history.text)) == 1
        # and the named one
        form = done.forms['pack-form-1']
        assert form['db'].value == 'other'
        res = form.submit(headers=ORIGIN, status=303)
        assert 'Packed other' in res.follow().text
    finally:
        get_databases(router.registry).close()


def test_a_pack_longer_than_the_reply_bound_goes_on_alone(zeo_server):
    router = make_router(zeo_server.uri(), **{'zeostore.reply_timeout': '1'})
    try:
        boss = login(router, 'boss', 'pw-boss-1')
        oid = two_revisions(router)
        db = get_databases(router.registry).get('')
        form = boss.get('/@@manage-database').forms['pack-form-0']
        os.kill(zeo_server.pid, signal.SIGSTOP)  # a server slow to pack
        try:
            res = form.submit(headers=ORIGIN, status=303)
        finally:
            os.kill(zeo_server.pid, signal.SIGCONT)
        assert 'packing=' in res.location
        assert db.storage.is_connected()  # waited less, dropped nothing
        page = res.follow()
        assert 'The server packs on alone' in page.text
        deadline = time.monotonic() + 20
        while len(db.history(oid, size=10)) > 1:  # and it does
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        get_databases(router.registry).close()
