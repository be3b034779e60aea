"""The object browser (``pyramid_zeostore.manage``) over a real ZEO server.

The ready app with a manager, an editor and no one logged in; pages
fetched and forms posted with WebTest as a browser would (session login,
the page's CSRF token, same-origin ``Origin``). Checked: who may see it,
the contents page and its keyset paging, add / rename / delete after a
confirmation page, an object's stored attributes (shown without running
its code) and links by oid, the edit form's type checks answered on the
same page, and the user and note each write leaves on its transaction.
"""

from __future__ import annotations

import html
import re

import pytest
from persistent import Persistent
from persistent.mapping import PersistentMapping
from webtest import TestApp

from pyramid_zeostore import Folder, get_databases
from pyramid_zeostore.app.content import Item

from .managesupport import (
    BOSS,
    ORIGIN,
    app_root,
    last_transaction,
    login,
    make_router,
)


class Strange(Persistent):
    """An app class whose code must never run on the object page."""

    def __repr__(self):  # pragma: no cover - must not be called
        raise AssertionError('the object page ran __repr__')

    @property
    def dangerous(self):  # pragma: no cover - must not be called
        raise AssertionError('the object page ran a property')


class Opaque:
    """A plain (not persistent) value of an app class."""

    def __repr__(self):  # pragma: no cover - must not be called
        raise AssertionError('the object page ran __repr__')


@pytest.fixture
def router(zeo_server):
    router = make_router(zeo_server.uri(), users=(
        BOSS + ('manager',), ('ed', 'pw-ed-12', 'editor')))
    yield router
    get_databases(router.registry).close()


@pytest.fixture
def boss(router):
    return login(router, *BOSS)


def test_only_managers_see_it(router):
    anonymous = TestApp(router, extra_environ={'HTTP_HOST': 'localhost'})
    res = anonymous.get('/@@manage', status=403)
    assert 'Log in' in res.text or 'log in' in res.text
    editor = login(router, 'ed', 'pw-ed-12')
    editor.get('/@@manage', status=403)
    editor.get('/@@manage.css', status=403)
    # and no write without it, even with a valid session and token
    boss = login(router, 'boss', 'pw-boss-1')
    css = boss.get('/@@manage.css')
    assert css.content_type == 'text/css' and 'font' in css.text
    page = boss.get('/@@manage')
    token = page.forms['add-form']['csrf_token'].value
    editor.post('/@@manage-add', {'name': 'x', 'kind': 'item',
                                  'csrf_token': token},
                headers=ORIGIN, status=403)


def test_add_a_folder_and_an_item_with_attributes(router, boss):
    page = boss.get('/@@manage')
    assert 'No children.' in page.text
    form = page.forms['add-form']
    form['name'], form['kind'] = 'docs', 'folder'
    res = form.submit(headers=ORIGIN).follow()
    assert 'docs' in res.text and '0 children' in res.text
    form = boss.get('/docs/@@manage').forms['add-form']
    form['name'], form['kind'] = 'hello', 'item'
    form['attributes'] = '{"title": "Hello", "n": 3, "tags": ["a", "b"]}'
    form.submit(headers=ORIGIN, status=303)
    conn, tm, root = app_root(router)
    try:
        item = root['docs']['hello']
        assert isinstance(item, Item)
        assert (item.title, item.n, item.tags) == ('Hello', 3, ['a', 'b'])
        assert item.__parent__ is root['docs']
    finally:
        conn.close()
    entry = last_transaction(router)
    assert entry['user_name'] in (b'boss', 'boss')
    assert 'added item /docs/hello' in str(entry['description'])


def test_a_refused_form_is_the_same_page_with_the_error(router, boss):
    boss.get('/@@manage')
    form = boss.get('/@@manage').forms['add-form']
    form['name'], form['kind'] = 'docs', 'folder'
    form.submit(headers=ORIGIN)
    form = boss.get('/@@manage').forms['add-form']
    form['name'] = 'docs'  # taken
    form['attributes'] = '{not json'
    res = form.submit(headers=ORIGIN, status=400)
    assert res.content_type == 'text/html'
    assert "'docs' exists already" in html.unescape(res.text)
    assert 'not JSON' in res.text
    assert 'aria-invalid="true"' in res.text


def test_rename_and_delete_after_a_confirmation(router, boss):
    conn, tm, root = app_root(router)
    try:
        root['a'] = Folder()
        root['a']['inner'] = Item()
        root['b'] = Item()
        tm.commit()
    finally:
        conn.close()
    form = boss.get('/@@manage').forms['rename-form']
    form['old'], form['new'] = 'a', 'renamed'
    form.submit(headers=ORIGIN, status=303)
    assert 'renamed /a to /renamed' in str(
        last_transaction(router)['description'])
    pick = boss.get('/@@manage').forms['pick-form']
    for box in pick.fields['name']:
        box.checked = True
    confirm = pick.submit('do', value='delete', headers=ORIGIN).follow()
    assert 'Delete 2 children?' in confirm.text
    assert '1 children' in confirm.text  # what 'renamed' holds
    confirm.forms['delete-form'].submit(headers=ORIGIN, status=303)
    conn, tm, root = app_root(router)
    try:
        assert list(root) == []
    finally:
        conn.close()
    assert 'deleted /b, /renamed' in str(
        last_transaction(router)['description'])


def test_the_object_page_shows_state_without_running_code(router, boss):
    conn, tm, root = app_root(router)
    try:
        item = root['thing'] = Item()
        item.title = '<script>alert(1)</script>'
        item.blob = b'\x00\x01binary'
        item.nested = {'k': [1, 2.5, None, True]}
        item.strange = Strange()  # persistent, no path: a link by oid
        item.opaque = Opaque()
        item.mapping = PersistentMapping(x=1)
        tm.commit()
        strange_oid = f"{int.from_bytes(item.strange._p_oid, 'big'):016x}"
    finally:
        conn.close()
    res = boss.get('/thing/@@manage')
    text = res.text
    assert '<script>alert(1)</script>' not in text
    assert '&lt;script&gt;alert(1)&lt;/script&gt;' in text
    assert '00 01 62 69 6e' in text  # bytes as hex
    assert f'/@@manage/oid/{strange_oid}' in text
    assert 'tests.functional.test_manage.Opaque' in text
    # the persistent sub-object by its oid: its state, no code run
    res = boss.get(f'/@@manage/oid/{strange_oid}')
    assert 'oid ' + strange_oid in res.text
    boss.get('/@@manage/oid/zz', status=404)
    boss.get('/@@manage/oid/7fffffffffffffff', status=404)


def test_edit_checks_types_on_the_same_page(router, boss):
    conn, tm, root = app_root(router)
    try:
        root['thing'] = Item(count=1)
        tm.commit()
    finally:
        conn.close()
    cases = [
        ('count', 'int', 'abc', "'abc' is not a whole number"),
        ('when', 'date', '2026-13-01', 'is not a date (YYYY-MM-DD)'),
        ('flag', 'bool', 'maybe', 'is not true or false'),
        ('data', 'json', '3', 'expected a JSON list or object'),
        ('_p_secret', 'str', 'x', 'expected a name of letters'),
    ]
    for attribute, kind, value, message in cases:
        form = boss.get('/thing/@@manage').forms['edit-form']
        form['attribute'], form['type'], form['value'] = (
            attribute, kind, value)
        res = form.submit(headers=ORIGIN, status=400)
        assert res.content_type == 'text/html'
        assert message in html.unescape(res.text), (attribute, res.text)
    for attribute, kind, value, expected in [
        ('count', 'int', '42', 42), ('ratio', 'float', '0.5', 0.5),
        ('flag', 'bool', 'true', True), ('title', 'str', 'Hi', 'Hi'),
        ('data', 'json', '{"a": [1]}', {'a': [1]}),
    ]:
        form = boss.get('/thing/@@manage').forms['edit-form']
        form['attribute'], form['type'], form['value'] = (
            attribute, kind, value)
        form.submit(headers=ORIGIN, status=303)
        conn, tm, root = app_root(router)
        try:
            assert getattr(root['thing'], attribute) == expected
        finally:
            conn.close()
    assert 'set data of /thing' in str(
        last_transaction(router)['description'])


def test_keyset_pages_and_a_folders_own_attributes(router, boss):
    conn, tm, root = app_root(router)
    try:
        big = root['big'] = Folder()
        for i in range(120):
            big[f'n{i:03d}'] = Item()
        tm.commit()
    finally:
        conn.close()
    first = boss.get('/big/@@manage')
    names = re.findall(r'value="(n\d{3})"', first.text)
    assert names == [f'n{i:03d}' for i in range(50)]
    following = first.click('Next page')
    assert re.findall(r'value="(n\d{3})"', following.text)[0] == 'n050'
    assert 'First page' in following.text
    boss.get('/big/@@manage?size=0', status=400)
    own = boss.get('/big/@@manage-object')
    assert '_data' in own.text
    assert 'pyramid_zeostore.folder.FolderTree' in own.text


def test_refusals_are_pages_with_the_reason(router, boss):
    conn, tm, root = app_root(router)
    try:
        root['docs'] = Folder()
        root['thing'] = Item(tree=PersistentMapping(), n=1)
        tm.commit()
        loose = root['thing'].tree  # persistent, with no path
        loose_oid = f"{int.from_bytes(loose._p_oid, 'big'):x}"
    finally:
        conn.close()
    token = boss.get('/@@manage').forms['add-form']['csrf_token'].value

    def post(path, status, **fields):
        return boss.post(path, {'csrf_token': token, **fields},
                         headers=ORIGIN, status=status)

    res = post('/@@manage-add', 400, name='x', kind='gadget')
    assert 'expected folder or item' in res.text
    res = post('/@@manage-add', 400, name='x', kind='item',
               attributes='[1, 2]')
    assert 'expected a JSON object of attribute names' in res.text
    post('/@@manage-add', 400, name='', kind='item')  # required
    post('/@@manage-add', 400, name='x' * 70000, kind='item')  # too long
    res = post('/@@manage-rename', 400, old='nosuch', new='y')
    assert 'no child named' in html.unescape(res.text)
    res = post('/@@manage-rename', 400, old='docs', new='thing')
    assert 'exists already' in html.unescape(res.text)
    res = post('/thing/@@manage-edit', 400, attribute='tree', type='str',
               value='x')
    assert 'not editable here' in res.text
    res = post('/thing/@@manage-edit', 400, attribute='n', type='complex',
               value='1j')
    assert 'expected one of' in res.text
    boss.get('/@@manage?after=zzz', status=200)  # unordered: keyset
    boss.get('/@@manage/other/1', status=404)
    boss.get('/@@manage/oid/00000000000000ffff', status=404)
    # an object without a path is edited through the root, by oid
    res = post(f'/@@manage-edit?oid={loose_oid}', 303, attribute='note',
               type='str', value='hi')
    assert res.location.endswith(f'/@@manage/oid/{int(loose_oid, 16):016x}')
    conn, tm, root = app_root(router)
    try:
        assert root['thing'].tree.note == 'hi'
    finally:
        conn.close()
    assert f'set note of oid {int(loose_oid, 16):016x}' in str(
        last_transaction(router)['description'])
