"""The object browser's rarer paths over a real ZEO server.

The ready app with a manager, driven with WebTest as a browser, or a
hostile client, would: query strings and forms no page makes (a keyset
page after a child of an ordered folder that is gone, a name no folder
takes, a delete of children that are not there, one side of a
comparison, an undo id out of bounds, the pack of a database that does
not exist), a clipboard cookie of an older shape, a paste whose copies
find no free name or would copy too much, a note on a request path
``transaction`` strips, a child that is no persistent object, a
database server gone between the probe and the figures of the database
page, and an app of its own whose ACL lets its manager cut but no longer
paste from a folder. Each answer is checked as the user sees it (status,
page text) and in the database (what was, or was not, changed).
"""

from __future__ import annotations

import html
import re

import pytest
import transaction
import ZODB
from persistent import Persistent
from pyramid.authorization import (
    ACLHelper,
    Allow,
    Authenticated,
    Deny,
    Everyone,
)
from pyramid.config import Configurator
from pyramid.session import SignedCookieSessionFactory
from webob.cookies import SignedSerializer
from webtest import TestApp
from ZODB.FileStorage import FileStorage

from pyramid_zeostore import Folder, get_databases
from pyramid_zeostore.app.content import Item
from pyramid_zeostore.app.security import SESSION_COOKIE
from pyramid_zeostore.manage import database
from pyramid_zeostore.manage.clipboard import CLIPBOARD, MAX_COPY, MAX_NAMES

from .managesupport import (
    BOSS,
    ORIGIN,
    SECRET,
    app_root,
    last_transaction,
    login,
    make_router,
)


class Plain:
    """A child that is no persistent object: stored in its folder's
    record, with no oid and no modification time of its own."""

    def __init__(self, title):
        self.title = title


class Strict(Persistent):
    """An app's class whose ``__setattr__`` checks what it is given."""

    def __setattr__(self, name, value):
        if name == 'level' and value < 0:
            self.touched = True  # a change the refusal must not keep
            raise ValueError('level must not be negative')
        super().__setattr__(name, value)


@pytest.fixture
def router(zeo_server):
    router = make_router(zeo_server.uri(), **{'zodb_uri.other': 'memory://'})
    yield router
    get_databases(router.registry).close()


@pytest.fixture
def boss(router):
    return login(router, *BOSS)


def text_of(res) -> str:
    return html.unescape(re.sub(r'<[^>]+>', ' ', res.text))


def alert(res) -> str:
    """The text of the page's errors block (role="alert")."""
    found = res.html.find(attrs={'role': 'alert'})
    assert found is not None, res.text
    return found.get_text(' ', strip=True)


def token_of(app, path='/') -> str:
    return app.get(path + '@@manage').forms['add-form']['csrf_token'].value


def post(app, path, status, token, **fields):
    return app.post(path, {'csrf_token': token, **fields}, headers=ORIGIN,
                    status=status)


def note_lines(router) -> list[str]:
    return str(last_transaction(router)['description']).splitlines()


def names_in(router, path=()) -> list[str]:
    conn, tm, root = app_root(router)
    try:
        for name in path:
            root = root[name]
        return list(root)
    finally:
        conn.close()


# -- views: forms and queries no page makes ---------------------------------


def test_a_keyset_page_after_a_gone_child_of_an_ordered_folder(
        router, boss):
    conn, tm, root = app_root(router)
    try:
        docs = root['docs'] = Folder()
        for name in ('b', 'a', 'c'):
            docs[name] = Item()
        docs.set_order(['b', 'a', 'c'])
        tm.commit()
    finally:
        conn.close()
    page = boss.get('/docs/@@manage?size=1&after=b')
    assert [a.get_text() for a in page.html.select('tbody a')][:1] == ['a']
    res = boss.get('/docs/@@manage?after=gone', status=400)
    assert "?after='gone': no such child" in res.text


def test_a_name_no_folder_takes_is_refused_on_the_page(router, boss):
    conn, tm, root = app_root(router)
    try:
        root['docs'] = Folder()
        tm.commit()
    finally:
        conn.close()
    before = last_transaction(router)['id']
    token = token_of(boss)
    for name, reason in [
            ('a/b', 'Names which contain "/" are not allowed'),
            ('@@x', 'Names which start with "@@" are not allowed'),
            ('..', 'Names "." and ".." are not allowed')]:
        res = post(boss, '/@@manage-add', 400, token, name=name,
                   kind='item')
        assert reason in text_of(res), name
        assert res.html.find(id='add-form') is not None
    res = post(boss, '/@@manage-rename', 400, token, old='docs',
               new='x/y')
    assert 'Names which contain "/" are not allowed' in text_of(res)
    assert names_in(router) == ['docs']
    assert last_transaction(router)['id'] == before


def test_a_delete_posted_without_its_children_is_refused(router, boss):
    conn, tm, root = app_root(router)
    try:
        root['docs'] = Folder()
        root['docs']['x'] = Item()
        tm.commit()
    finally:
        conn.close()
    before = last_transaction(router)['id']
    token = token_of(boss, '/docs/')
    res = post(boss, '/docs/@@manage-delete', 400, token, name='gone')
    assert "delete: no child named 'gone'" in alert(res)
    res = post(boss, '/docs/@@manage-delete', 400, token)
    assert 'delete: choose children to delete' in alert(res)
    # one there and one not: nothing goes
    res = boss.post('/docs/@@manage-delete',
                    [('csrf_token', token), ('name', 'x'),
                     ('name', 'gone')], headers=ORIGIN, status=400)
    assert "no child named 'gone'" in alert(res)
    assert names_in(router, ['docs']) == ['x']
    assert last_transaction(router)['id'] == before


def test_a_note_on_a_path_that_transaction_strips_is_added(router, boss):
    # pyramid_tm notes the request path; ``Transaction.note`` strips it,
    # so a path ending with a blank is no longer the description: the
    # view's note comes on a line of its own.
    token = token_of(boss)
    res = post(boss, '/@@manage-add/%20', 303, token, name='docs',
               kind='folder')
    assert res.location == 'http://localhost/@@manage'
    assert names_in(router)[:1] == ['docs']
    assert note_lines(router) == ['/@@manage-add/', 'added folder /docs']
    page = boss.get('/@@manage-transactions')
    notes = [td.get_text(strip=True) for td in
             page.html.select('#transactions tbody tr td:nth-of-type(4)')]
    assert notes[0].endswith('added folder /docs')
    assert 'href="http://localhost/docs/@@manage"' in page.text


def test_a_child_that_is_no_persistent_object(router, boss):
    conn, tm, root = app_root(router)
    try:
        root['plain'] = Plain('Loose')
        root['item'] = Item()
        tm.commit()
    finally:
        conn.close()
    page = boss.get('/@@manage')
    rows = {tr.find_all('td')[1].get_text(strip=True):
            [td.get_text(strip=True) for td in tr.find_all('td')]
            for tr in page.html.select('#pick-form tbody tr')}
    assert rows['plain'][2] == 'tests.functional.test_manage_edges.Plain'
    assert rows['plain'][-1] == ''  # no modification time of its own
    assert re.match(r'\d{4}-\d\d-\d\d ', rows['item'][-1])
    res = boss.get('/plain/@@manage-history', status=404)
    assert 'this object is not stored: it has no history' in res.text
    assert '<tr id="rev-' in boss.get('/item/@@manage-history').text


def test_names_a_class_takes_are_refused_as_the_api_refuses_them(
        router, boss):
    """``add`` set on a folder would hide ``Folder.add`` (every later
    POST to it a 500), ``order`` would run its setter (a ValueError):
    refused, on the page, next to the field; nothing stored. An app
    class's ``__setattr__`` that refuses a value: the same."""
    conn, tm, root = app_root(router)
    try:
        root['f9'] = Folder()
        root['strict'] = Strict()
        tm.commit()
    finally:
        conn.close()
    before = last_transaction(router)['id']
    token = token_of(boss)
    for attribute, kind, value, taken in [
            ('add', 'str', 'x', 'method add'),
            ('keys', 'int', '1', 'method keys'),
            ('order', 'json', '["zz"]', 'property order')]:
        res = post(boss, '/f9/@@manage-edit', 400, token,
                   attribute=attribute, type=kind, value=value)
        message = (f"'{attribute}' is not an attribute you can set: the "
                   f'name is taken by Folder (its {taken})')
        assert res.html.find(id='edit-attribute-error').get_text() == (
            message)
        assert message in alert(res)
    for kind, attributes, words in [
            ('folder', '{"keys": 1}', 'taken by Folder (its method keys)'),
            ('folder', '{"data": 1}', "'data' is not an attribute you can"),
            ('item', '{"ok": 1, "_p_x": 1}', 'expected a name of letters')]:
        res = post(boss, '/@@manage-add', 400, token, name='new',
                   kind=kind, attributes=attributes)
        assert words in alert(res), attributes
    res = post(boss, '/strict/@@manage-edit', 400, token,
               attribute='level', type='int', value='-1')
    assert res.html.find(id='edit-value-error').get_text() == (
        'tests.functional.test_manage_edges.Strict refused it: level must '
        'not be negative')
    assert last_transaction(router)['id'] == before
    conn, tm, root = app_root(router)
    try:
        assert 'add' not in root['f9'].__dict__
        assert 'touched' not in root['strict'].__dict__
        assert list(root) == ['f9', 'strict']
    finally:
        conn.close()
    # the JSON API still adds to the folder
    api = TestApp(router, extra_environ={'HTTP_HOST': 'localhost'})
    api.authorization = ('Basic', BOSS)
    api.post_json('/f9', {'name': 'q'}, status=201)


def test_values_the_api_would_refuse_are_refused_on_the_page(router, boss):
    """The JSON API's limits on values: nesting (32 levels, and what
    Python's parser cannot nest: a RecursionError), finite numbers and
    ``zeostore.max_value``; 400 (413 for the size) with the error next
    to its field, never a 500."""
    conn, tm, root = app_root(router)
    try:
        root['thing'] = Item(n=1)
        tm.commit()
    finally:
        conn.close()
    before = last_transaction(router)['id']
    token = token_of(boss)
    deep = '[' * 30000 + ']' * 30000
    for attributes in ('{"a": ' + deep + '}', '{"a": ' + '[' * 30000,
                       '{"a": ' + '[' * 33 + ']' * 33 + '}'):
        res = post(boss, '/@@manage-add', 400, token, name='x',
                   kind='item', attributes=attributes)
        assert 'values may nest at most 32 levels deep' in alert(res)
        assert res.html.find(id='add-attributes')['aria-invalid'] == 'true'
    res = post(boss, '/@@manage-add', 400, token, name='x', kind='item',
               attributes='{"a": NaN}')
    assert 'NaN is not a JSON number' in alert(res)
    for kind, value, status, words in [
            ('json', '[' * 30000, 400,
             'values may nest at most 32 levels deep'),
            ('json', '[' * 40 + ']' * 40, 400,
             'values may nest at most 32 levels deep'),
            ('float', 'nan', 400, 'numbers must be finite'),
            ('float', '-inf', 400, 'numbers must be finite'),
            ('str', '\u00e9' * 60000, 413,
             'the value is 360002 bytes of JSON, more than 262144 '
             '(zeostore.max_value)')]:
        res = post(boss, '/thing/@@manage-edit', status, token,
                   attribute='v', type=kind, value=value)
        assert res.content_type == 'text/html'
        assert res.html.find(id='edit-value-error').get_text().endswith(
            words), (kind, value[:10])
    assert last_transaction(router)['id'] == before


def test_a_plain_value_child_in_the_object_browser(router, boss):
    """A number or a tuple a shell put in a folder: listed with a link,
    shown read-only on a page of its own; a form posted to it is refused
    on that page."""
    conn, tm, root = app_root(router)
    try:
        root['i'] = 1
        root['t'] = (1, '<b>')
        tm.commit()
    finally:
        conn.close()
    before = last_transaction(router)['id']
    page = boss.get('/@@manage')
    links = {a.get_text(): a['href'] for a in page.html.select(
        '#pick-form tbody a')}
    assert links == {'i': 'http://localhost/i/@@manage',
                     't': 'http://localhost/t/@@manage'}
    res = boss.get('/t/@@manage')
    assert res.html.find('h1').get_text() == '/t'
    assert 'edit-form' not in res.forms
    assert res.html.find(id='plain-value') is not None
    assert '&lt;b&gt;' in res.text and '<b>' not in res.text
    crumbs = [li.get_text(strip=True) for li in res.html.select(
        '.crumbs li')]
    assert crumbs == ['/', 't']
    res = post(boss, '/i/@@manage-edit', 400, token_of(boss),
               attribute='x', type='str', value='y')
    assert 'this int is a plain value stored in its folder' in alert(res)
    assert last_transaction(router)['id'] == before


# -- history and undo --------------------------------------------------------


def revisions(router, count) -> tuple[str, list[str]]:
    """``/doc``, an Item committed ``count`` times (n = 0, 1, ...): its
    oid and its revisions' tids, newest first."""
    conn, tm, root = app_root(router)
    try:
        doc = root['doc'] = Item(n=0)
        tm.get().note('n=0')
        tm.commit()
        for i in range(1, count):
            doc.n = i
            tm.get().note(f'n={i}')
            tm.commit()
        oid = doc._p_oid
    finally:
        conn.close()
    db = get_databases(router.registry).get('')
    tids = [e['tid'].hex() for e in db.history(oid, size=count + 1)]
    assert len(tids) == count
    return f"{int.from_bytes(oid, 'big'):016x}", tids


def test_compare_with_a_revision_older_than_the_page(router, boss):
    from pyramid_zeostore.manage.history import MAX_REVISIONS

    _, tids = revisions(router, MAX_REVISIONS + 2)
    res = boss.get('/doc/@@manage-history')
    listed = re.findall(r'<tr id="rev-([0-9a-f]{16})"', res.text)
    assert listed == tids[:MAX_REVISIONS]
    oldest = tids[-1]
    res = boss.get('/doc/@@manage-history', {'a': oldest, 'b': tids[0]})
    diff = res.html.find(id='diff-table')
    cells = [[td.get_text(' ', strip=True) for td in tr.find_all('td')]
             for tr in diff.find('tbody').find_all('tr')]
    assert cells == [['n', 'changed', '0', str(MAX_REVISIONS + 1)]]
    # the older side is not on the page: read, with its commit's time
    heading = res.html.find(id='diff').get_text(' ', strip=True)
    assert re.fullmatch(
        rf'Changes from \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC {oldest} '
        rf'to .+ {tids[0]}', heading), heading


def test_one_side_of_a_comparison_is_refused(router, boss):
    _, tids = revisions(router, 2)
    for query in ({'a': tids[1]}, {'b': tids[0]}):
        res = boss.get('/doc/@@manage-history', query, status=400)
        assert '?a= and ?b=: give both revisions' in res.text


def test_an_undo_id_or_page_out_of_bounds_is_refused(router, boss):
    revisions(router, 2)
    page = boss.get('/@@manage-transactions')
    form = page.forms['undo-form-0']
    good, token = form['id'].value, form['csrf_token'].value
    before = last_transaction(router)['id']
    for fields in ({'id': good, 'first': '-1'},
                   {'id': good, 'first': '100001'},
                   {'id': 'ab' * 101}):
        res = boss.post('/@@manage-undo', {'csrf_token': token, **fields},
                        headers=ORIGIN, status=400)
        assert 'id: expected the hex id of an undo log entry' in res.text
    assert last_transaction(router)['id'] == before
    conn, tm, root = app_root(router)
    try:
        assert root['doc'].n == 1
    finally:
        conn.close()


def test_undo_in_a_database_without_an_undo_log(router, boss):
    token = token_of(boss)
    res = boss.post('/@@manage-undo', {'csrf_token': token, 'db': 'other',
                                       'id': 'aa'},
                    headers=ORIGIN, status=409)
    assert ('Cannot undo this transaction: this storage keeps no undo '
            'log. Nothing was changed.') in alert(res)
    assert 'ZODB.MappingStorage.MappingStorage' in res.text


# -- the database page -------------------------------------------------------


def test_figures_and_packs_a_client_made_up(router, boss):
    before = last_transaction(router)['id']
    page = boss.get('/@@manage-database',
                    {'packed': 'soon', 'packing': 'nan', 'db': 'other'})
    assert 'role="status"' not in page.text  # neither message
    page = boss.get('/@@manage-database', {'packed': '-1'})
    assert 'Packed' not in text_of(page)
    page = boss.get('/@@manage-database', {'packed': '1.5'})
    assert 'Packed main: done in 1.500 s.' in text_of(page)
    token = page.forms['pack-form-0']['csrf_token'].value
    res = boss.post('/@@manage-pack', {'csrf_token': token, 'db': 'nope',
                                       'days': '0'},
                    headers=ORIGIN, status=404)
    assert "no database named 'nope'" in res.text
    assert last_transaction(router)['id'] == before


def test_a_server_gone_after_the_probe_is_told_on_the_page(
        zeo_server, monkeypatch):
    router = make_router(zeo_server.uri())
    try:
        boss = login(router, *BOSS)
        db = get_databases(router.registry).get('')
        probed = []

        def check_then_stop(databases, timeout):
            found = real_check(databases, timeout)
            probed.append(found[0].connected)
            zeo_server.stop()
            return found

        real_check = database.check
        monkeypatch.setattr(database, 'check', check_then_stop)
        page = boss.get('/@@manage-database')
        assert probed == [True]
        section = page.html.find(id='db-0').get_text(' ', strip=True)
        assert 'ClientDisconnected' in section
        assert not db.storage.is_connected()
    finally:
        get_databases(router.registry).close()


# -- the clipboard -----------------------------------------------------------


def session_of(app) -> tuple[SignedSerializer, list]:
    """The session cookie's serializer and [accessed, created, state]."""
    from pyramid.session import JSONSerializer

    signed = SignedSerializer(SECRET, 'pyramid.session.', 'sha512',
                              serializer=JSONSerializer())
    return signed, signed.loads(app.cookies[SESSION_COOKIE].strip('"'))


@pytest.mark.parametrize('clip', [
    {'op': 'cut', 'from': '/a', 'objects': ['x']},  # no 'names'
    'cut /a x',  # not a dict
    {'op': 'move', 'from': '/a', 'names': ['x']},  # no such op
    {'op': 'copy', 'from': 'a', 'names': ['x']},  # not a path
    {'op': 'copy', 'from': '/a', 'names': []},
])
def test_a_clipboard_of_an_older_shape_is_dropped(router, boss, clip):
    conn, tm, root = app_root(router)
    try:
        root['a'] = Folder()
        root['a']['x'] = Item()
        root['b'] = Folder()
        tm.commit()
    finally:
        conn.close()
    page = boss.get('/b/@@manage')
    token = page.forms['add-form']['csrf_token'].value
    signed, (accessed, created, state) = session_of(boss)
    state[CLIPBOARD] = clip
    boss.set_cookie(SESSION_COOKIE, signed.dumps(
        [accessed, created, state]).decode('ascii'))
    assert session_of(boss)[1][2][CLIPBOARD] == clip
    res = post(boss, '/b/@@manage-paste', 400, token, do='paste')
    assert 'the clipboard is empty: cut or copy children first' in (
        alert(res))
    assert CLIPBOARD not in session_of(boss)[1][2]
    assert 'paste-form' not in boss.get('/b/@@manage').forms
    assert names_in(router, ['a']) == ['x']
    assert names_in(router, ['b']) == []


def test_a_paste_with_a_button_it_does_not_know(router, boss):
    conn, tm, root = app_root(router)
    try:
        root['a'] = Folder()
        root['a']['x'] = Item()
        tm.commit()
    finally:
        conn.close()
    token = token_of(boss, '/a/')
    post(boss, '/a/@@manage-selected', 303, token, do='cut', name='x')
    res = post(boss, '/@@manage-paste', 400, token, do='move')
    assert 'paste: expected a button: Paste or Empty clipboard' in (
        alert(res))
    assert 'paste-form' in res.forms  # still on the clipboard
    assert names_in(router, ['a']) == ['x']


def test_many_missing_children_are_named_by_the_first_five(router, boss):
    token = token_of(boss)
    names = [f'gone{i}' for i in range(8)]
    res = boss.post('/@@manage-selected',
                    [('csrf_token', token), ('do', 'copy')]
                    + [('name', n) for n in names],
                    headers=ORIGIN, status=409)
    assert ('no child named "gone0", "gone1", "gone2", "gone3", "gone4" '
            'and 3 more (gone meanwhile?): nothing was done') in alert(res)


def test_a_copy_of_many_children_notes_the_first_fifty(router, boss):
    names = [f'c{i:02d}' for i in range(55)]
    conn, tm, root = app_root(router)
    try:
        root['a'] = Folder()
        for name in names:
            root['a'][name] = Item()
        root['b'] = Folder()
        tm.commit()
    finally:
        conn.close()
    token = token_of(boss, '/a/')
    boss.post('/a/@@manage-selected',
              [('csrf_token', token), ('do', 'copy')]
              + [('name', n) for n in names], headers=ORIGIN, status=303)
    res = post(boss, '/b/@@manage-paste', 303, token, do='paste')
    assert 'Copied 55 children here.' in res.follow().text
    assert names_in(router, ['b']) == names
    note = note_lines(router)[-1]
    paths = ', '.join(f'/a/{n}' for n in names[:50])
    assert note == f'copied {paths} and 5 more to /b'


def test_a_copy_that_finds_no_free_name_is_refused(router, boss):
    taken = ['x', 'x-copy'] + [f'x-copy-{n}' for n in range(2, MAX_NAMES + 1)]
    conn, tm, root = app_root(router)
    try:
        a = root['a'] = Folder()
        for name in taken:
            a[name] = Item()
        tm.commit()
    finally:
        conn.close()
    token = token_of(boss, '/a/')
    post(boss, '/a/@@manage-selected', 303, token, do='copy', name='x')
    res = post(boss, '/a/@@manage-paste', 409, token, do='paste')
    assert 'paste: no free name for a copy of "x"' in alert(res)
    assert len(names_in(router, ['a'])) == len(taken)
    # one name fewer taken: the copy gets the last one
    conn, tm, root = app_root(router)
    try:
        del root['a'][f'x-copy-{MAX_NAMES}']
        tm.commit()
    finally:
        conn.close()
    res = post(boss, '/a/@@manage-paste', 303, token, do='paste')
    assert f'"x-copy-{MAX_NAMES}"' in html.unescape(res.follow().text)
    assert len(names_in(router, ['a'])) == len(taken)


def test_a_copy_of_more_objects_than_one_request_copies(router, boss):
    conn, tm, root = app_root(router)
    try:
        a = root['a'] = Folder()
        big = a['big'] = Folder()
        for i in range(MAX_COPY):
            big[f'{i:05d}'] = Item()
        a['small'] = Item()
        root['b'] = Folder()
        tm.commit()
    finally:
        conn.close()
    before = last_transaction(router)['id']
    token = token_of(boss, '/a/')
    post(boss, '/a/@@manage-selected', 303, token, do='copy',
         name=['small', 'big'])
    res = post(boss, '/b/@@manage-paste', 409, token, do='paste')
    assert (f'"big", "small" hold more than {MAX_COPY} objects: too many '
            'to copy in one request. Nothing was copied') in alert(res) or (
        f'"small", "big" hold more than {MAX_COPY} objects' in alert(res))
    assert names_in(router, ['b']) == []
    assert last_transaction(router)['id'] == before


# -- an app of its own, with ACLs --------------------------------------------


class OneManager:
    """A security policy of an app of its own: one user, ``boss``,
    whose permissions are the context's ACL."""

    def identity(self, request):
        return 'boss'

    def authenticated_userid(self, request):
        return 'boss'

    def permits(self, request, context, permission):
        return ACLHelper().permits(
            context, [Everyone, Authenticated, 'boss'], permission)

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


def test_a_paste_from_a_folder_locked_meanwhile_is_refused(zeo_server):
    with Configurator(settings={'zodb_uri': zeo_server.uri()}) as config:
        config.include('pyramid_zeostore')
        config.set_security_policy(OneManager())
        config.set_session_factory(SignedCookieSessionFactory(SECRET))
        config.include('pyramid_zeostore.manage')
    router = config.make_wsgi_app()
    try:
        app = TestApp(router)
        app.get('/@@manage', status=403)  # the root made, no ACL yet
        db = get_databases(router.registry).get('')
        tm = transaction.TransactionManager()
        conn = db.open(transaction_manager=tm)
        try:
            root = conn.root()['app_root']
            root.__acl__ = [(Allow, 'boss', 'manage')]
            root['a'] = Folder()
            root['a']['x'] = Item()
            root['b'] = Folder()
            tm.commit()
            page = app.get('/a/@@manage')
            form = page.forms['pick-form']
            form['name'] = True
            form.submit('do', value='cut', status=303)
            # the source is locked meanwhile
            root['a'].__acl__ = [(Allow, 'someone', 'manage'),
                                 (Deny, Everyone, 'manage')]
            tm.commit()
            app.get('/a/@@manage', status=403)
            res = app.get('/b/@@manage').forms['paste-form'].submit(
                'do', value='paste', status=403)
            assert 'paste: you may not manage /a: nothing was pasted' in (
                alert(res))
            tm.abort()
            assert list(root['a']) == ['x'] and list(root['b']) == []
        finally:
            tm.abort()
            conn.close()
    finally:
        get_databases(router.registry).close()



def test_a_pack_the_storage_refuses_is_told_on_the_page(zeo_server,
                                                         tmp_path):
    path = tmp_path / 'Other.fs'
    ZODB.DB(FileStorage(str(path))).close()
    router = make_router(zeo_server.uri(), **{
        'zodb_uri.other': f'file://{path}?read_only=true'})
    try:
        boss = login(router, *BOSS)
        size = path.stat().st_size
        form = boss.get('/@@manage-database').forms['pack-form-1']
        assert form['db'].value == 'other'
        form['days'] = '0'
        res = form.submit(headers=ORIGIN, status=409)
        assert res.content_type == 'text/html'
        assert 'Packing other failed: ReadOnlyError' in text_of(res)
        assert 'Traceback' not in res.text
        assert 'pack-form-1' in res.forms  # the page, to try again
        assert path.stat().st_size == size
    finally:
        get_databases(router.registry).close()


def test_a_note_that_is_not_utf8_does_not_break_the_pages(zeo_server):
    """A transaction written with a note and user that are not UTF-8 (as
    an old database may hold): every page shows them with the bytes
    replaced, where ZODB.DB's strict decoding failed them (500)."""
    from ZODB.Connection import TransactionMetaData
    from ZODB.utils import z64

    router = make_router(zeo_server.uri())
    try:
        boss = login(router, *BOSS)
        conn, tm, root = app_root(router)
        try:
            root['doc'] = Item(title='doc')
            tm.get().note('made')
            tm.commit()
            oid = root['doc']._p_oid
        finally:
            conn.close()
        storage = get_databases(router.registry).get('').storage
        meta = TransactionMetaData(user=b'ol\xe9', description=b'caf\xe9!')
        storage.tpc_begin(meta)
        data, serial = storage.load(oid)
        storage.store(oid, serial, data, '', meta)
        storage.tpc_vote(meta)
        storage.tpc_finish(meta)
        for path in ('/@@manage-transactions', '/doc/@@manage-history',
                     '/@@manage-database', '/doc/@@manage'):
            res = boss.get(path, status=200)
            assert 'caf\ufffd!' in text_of(res), path
        database_page = text_of(boss.get('/@@manage-database'))
        assert 'ol\ufffd' in database_page
        assert z64 != oid
    finally:
        get_databases(router.registry).close()


def test_packing_memory_to_an_earlier_time_is_told_on_the_page(
    zeo_server
):
    """MappingStorage refuses to pack to a time before its last pack
    with a ValueError: a 409 on the page, not a 500."""
    router = make_router(zeo_server.uri(), **{'zodb_uri.other': 'memory://'})
    try:
        boss = login(router, *BOSS)
        form = boss.get('/@@manage-database').forms['pack-form-1']
        form['days'] = '0'
        form.submit(headers=ORIGIN, status=303)
        form = boss.get('/@@manage-database').forms['pack-form-1']
        form['days'] = '1'
        res = form.submit(headers=ORIGIN, status=409)
        assert 'Packing other failed: ValueError' in text_of(res)
        assert 'Already packed to a later time' in text_of(res)
    finally:
        get_databases(router.registry).close()
