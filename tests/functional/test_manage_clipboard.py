"""The object browser's selection, clipboard and paste over a real ZEO
server (``pyramid_zeostore.manage.clipboard``).

The ready app with a manager, driven with WebTest as a browser would
(session login, the page's CSRF token, same-origin ``Origin``): the
contents page's ``pick-form`` posts the chosen children to
``@@manage-selected`` (``do`` = cut, copy or delete), the clipboard lives
in the session cookie and the ``paste-form`` posts to ``@@manage-paste``.
Checked: a cut and paste moves the children (``__parent__`` right, the
folder's move events sent), copies pasted into the same folder get free
names, every refusal (a taken name, a folder into itself, a source gone,
too much on the clipboard, no CSRF token) leaves everything as it was and
answers the folder's page with the reason (4xx), and each write notes
what it did on its transaction.
"""

from __future__ import annotations

import html
import re

import pytest
import transaction
from webtest import TestApp

from pyramid_zeostore import Folder, get_databases, main
from pyramid_zeostore.app.content import Item
from pyramid_zeostore.app.security import SESSION_COOKIE
from pyramid_zeostore.app.users import add_user
from pyramid_zeostore.interfaces import (
    IObjectAdded,
    IObjectRemoved,
    IObjectWillBeAdded,
)
from pyramid_zeostore.manage.clipboard import MAX_NAMES

SECRET = 'x' * 40
ORIGIN = {'Origin': 'http://localhost'}


@pytest.fixture
def events():
    """The folder events the app sent: (kind, name, moving's name)."""
    return []


@pytest.fixture
def router(zeo_server, events):
    router = main({}, zodb_uri=zeo_server.uri(),
                  **{'zeostore.secret': SECRET})
    db = get_databases(router.registry).get('')
    add_user(db, 'boss', 'pw-boss-1', 'manager')

    def record(kind):
        def handler(event):
            if event.object is event.top:
                moving = event.moving
                events.append((kind, event.name, event.object,
                               None if moving is None else
                               moving.__name__ or '/'))
        return handler

    router.registry.registerHandler(record('added'), (IObjectAdded,))
    router.registry.registerHandler(record('removed'), (IObjectRemoved,))
    yield router
    get_databases(router.registry).close()


@pytest.fixture
def boss(router):
    app = TestApp(router, extra_environ={'HTTP_HOST': 'localhost'})
    form = app.get('/@@login').forms[0]
    form['name'], form['password'] = 'boss', 'pw-boss-1'
    assert form.submit(headers=ORIGIN).status_int == 303
    return app


class Tree:
    """The app root on a connection of the test's own: ``with
    Tree(router) as root:`` commits at the end."""

    def __init__(self, router):
        self.db = get_databases(router.registry).get('')

    def __enter__(self):
        self.tm = transaction.TransactionManager()
        self.conn = self.db.open(transaction_manager=self.tm)
        return self.conn.root()['app_root']

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.tm.commit()
        finally:
            self.tm.abort()
            self.conn.close()


def last_note(router) -> str:
    db = get_databases(router.registry).get('')
    entry = db.undoLog(0, 1)[0]
    description = entry['description']
    if isinstance(description, bytes):
        description = description.decode('utf-8')
    return description.splitlines()[-1]  # after pyramid_tm's path line


def choose(app, path, names, do, status=303):
    """Tick ``names`` on ``path``'s contents page and press ``do``."""
    page = app.get(path + '@@manage')
    form = page.forms['pick-form']
    assert form.method.upper() == 'POST'
    boxes = form.fields['name']
    for box in boxes:
        box.checked = box._value in names
    assert sum(box.checked for box in boxes) == len(names)
    return form.submit('do', value=do, headers=ORIGIN, status=status)


def paste(app, path, status=303, do='paste'):
    page = app.get(path + '@@manage')
    form = page.forms['paste-form']
    return form.submit('do', value=do, headers=ORIGIN, status=status)


def alert(res) -> str:
    """The text of the page's errors block (role="alert")."""
    found = re.search(r'<div class="errors" role="alert">(.*?)</div>',
                      res.text, re.S)
    assert found, res.text
    return html.unescape(re.sub(r'<[^>]+>', ' ', found.group(1)))


def test_cut_two_children_and_paste_them_into_another_folder(
        router, boss, events):
    with Tree(router) as root:
        root['a'] = Folder()
        root['a']['x'] = Item(title='X')
        root['a']['y'] = Folder()
        root['a']['y']['z'] = Item()
        root['a']['w'] = Item()
        root['b'] = Folder()
    cut = choose(boss, '/a/', ['x', 'y'], 'cut')
    assert cut.location.endswith('/a/@@manage')
    page = cut.follow()
    assert '2 children cut from /a: paste them into a folder' in page.text
    assert 'role="status"' in page.text
    assert 'paste-form' in page.forms
    other = boss.get('/b/@@manage')
    assert 'paste-form' in other.forms  # on every folder's page
    assert '2 children cut from <code>/a</code>' in other.text
    events.clear()
    done = paste(boss, '/b/')
    assert done.location.endswith('/b/@@manage')
    page = done.follow()
    assert 'Moved 2 children from /a here.' in page.text
    assert 'paste-form' not in page.forms  # the clipboard is emptied
    assert 'paste-form' not in boss.get('/a/@@manage').forms
    with Tree(router) as root:
        a, b = root['a'], root['b']
        assert list(a) == ['w'] and list(b) == ['x', 'y']
        assert b['x'].__parent__ is b and b['x'].__name__ == 'x'
        assert b['x'].title == 'X'
        assert b['y'].__parent__ is b and b['y']['z'].__parent__ is b['y']
        assert len(a) == 1 and len(b) == 2
    # the folder's move events: removed (moving to b), then added
    # (moving from a), for each child, the same objects
    assert [(kind, name, moving) for kind, name, _, moving in events] == [
        ('removed', 'x', 'b'), ('added', 'x', 'a'),
        ('removed', 'y', 'b'), ('added', 'y', 'a'),
    ]
    assert events[0][2] is events[1][2]
    assert last_note(router) == 'moved /a/x, /a/y to /b'


def test_copies_pasted_into_the_same_folder_get_free_names(
        router, boss, events):
    with Tree(router) as root:
        root['a'] = Folder()
        root['a']['x'] = Item(title='X')
        root['a']['y'] = Folder()
        root['a']['y']['z'] = Item()
        root['b'] = Folder()
    page = choose(boss, '/a/', ['x', 'y'], 'copy').follow()
    assert '2 children copied from /a: paste them into a folder' in (
        page.text)
    events.clear()
    page = paste(boss, '/a/').follow()
    assert 'under new names: "x-copy", "y-copy"' in html.unescape(
        page.text)
    assert 'paste-form' in page.forms  # a copy stays on the clipboard
    assert last_note(router) == (
        'copied /a/x, /a/y to /a as x-copy, y-copy')
    paste(boss, '/a/')
    paste(boss, '/b/')  # free there: the same names
    with Tree(router) as root:
        a, b = root['a'], root['b']
        assert list(a) == ['x', 'x-copy', 'x-copy-2', 'y', 'y-copy',
                           'y-copy-2']
        assert list(b) == ['x', 'y']
        copy = a['y-copy']
        assert copy is not a['y'] and copy._p_oid != a['y']._p_oid
        assert copy.__parent__ is a and copy.__name__ == 'y-copy'
        assert copy['z'].__parent__ is copy
        assert copy['z']._p_oid != a['y']['z']._p_oid
        assert a['x-copy'].title == 'X'
        assert b['x'].__parent__ is b
    assert [(kind, name) for kind, name, _, _ in events[:2]] == [
        ('added', 'x-copy'), ('added', 'y-copy')]
    assert last_note(router) == 'copied /a/x, /a/y to /b'


def test_a_move_onto_a_taken_name_is_refused_and_moves_nothing(
        router, boss):
    with Tree(router) as root:
        root['a'] = Folder()
        root['a']['x'] = Item()
        root['a']['y'] = Item(mark='moving')
        root['b'] = Folder()
        root['b']['y'] = Item(mark='staying')
    choose(boss, '/a/', ['x', 'y'], 'cut')
    res = paste(boss, '/b/', status=409)
    assert res.content_type == 'text/html'
    message = alert(res)
    assert '"y": a child of that name exists here already' in message
    assert 'Nothing was moved' in message
    assert 'paste-form' in res.forms  # still on the clipboard
    with Tree(router) as root:
        assert list(root['a']) == ['x', 'y']
        assert list(root['b']) == ['y']
        assert root['b']['y'].mark == 'staying'
        assert root['a']['x'].__parent__ is root['a']


def test_a_move_refused_half_way_is_undone(router, boss):
    def veto(event):
        if event.name == 'y':
            raise ValueError('a subscriber refused "y"')

    router.registry.registerHandler(veto, (IObjectWillBeAdded,))
    with Tree(router) as root:
        root['a'] = Folder()
        root['a']['x'] = Item()
        root['a']['y'] = Item()
        root['b'] = Folder()
    choose(boss, '/a/', ['x', 'y'], 'cut')
    # x moves, then y is taken out of a and refused in b: both undone
    res = paste(boss, '/b/', status=409)
    message = alert(res)
    assert 'a subscriber refused "y"' in message
    assert 'nothing was changed' in message
    assert 'No children.' in res.text  # b's page, as it was
    with Tree(router) as root:
        a = root['a']
        assert list(a) == ['x', 'y'] and list(root['b']) == []
        assert a['x'].__parent__ is a and a['y'].__parent__ is a
        assert len(a) == 2 and len(root['b']) == 0


def test_a_folder_cannot_be_moved_into_itself_or_below(router, boss):
    with Tree(router) as root:
        root['a'] = Folder()
        root['a']['sub'] = Folder()
        root['other'] = Item()
    choose(boss, '/', ['a', 'other'], 'cut')
    for target in ('/a/', '/a/sub/'):
        res = paste(boss, target, status=409)
        assert 'cannot move "a" into itself or its own descendant' in (
            alert(res))
    res = paste(boss, '/', status=409)  # where they are
    assert 'already in this folder' in alert(res)
    with Tree(router) as root:
        assert list(root) == ['a', 'other']
        assert list(root['a']) == ['sub']
        assert root['a'].__parent__ is root


def test_a_source_or_child_gone_meanwhile_is_refused(router, boss):
    with Tree(router) as root:
        root['a'] = Folder()
        root['a']['x'] = Item()
        root['a']['y'] = Item()
        root['b'] = Folder()
    choose(boss, '/a/', ['x', 'y'], 'cut')
    with Tree(router) as root:
        del root['a']['x']
    res = paste(boss, '/b/', status=409)
    assert '"x" no longer in /a' in alert(res)
    with Tree(router) as root:
        assert list(root['a']) == ['y'] and list(root['b']) == []
        root.rename('a', 'renamed')
    res = paste(boss, '/b/', status=409)
    assert '/a no longer exists' in alert(res)
    page = paste(boss, '/b/', do='clear').follow()
    assert 'The clipboard is empty now.' in page.text
    assert 'paste-form' not in page.forms
    # and a paste with nothing on the clipboard
    token = page.forms['add-form']['csrf_token'].value
    res = boss.post('/b/@@manage-paste', {'csrf_token': token},
                    headers=ORIGIN, status=400)
    assert 'the clipboard is empty' in alert(res)


def test_the_clipboard_is_bounded(router, boss):
    with Tree(router) as root:
        big = root['big'] = Folder()
        for i in range(150):
            big[f'a-rather-long-child-name-{i:04d}'] = Item()
    page = boss.get('/big/@@manage?size=500')
    token = page.forms['pick-form']['csrf_token'].value
    # more names than the clipboard holds: refused before looking at them
    names = [f'n{i}' for i in range(MAX_NAMES + 1)]
    res = boss.post('/big/@@manage-selected',
                    {'csrf_token': token, 'do': 'cut', 'name': names},
                    headers=ORIGIN, status=400)
    assert f'at most {MAX_NAMES} at once' in alert(res)
    # 150 long names do not fit in the session cookie: refused
    names = [f'a-rather-long-child-name-{i:04d}' for i in range(150)]
    res = boss.post('/big/@@manage-selected',
                    {'csrf_token': token, 'do': 'copy', 'name': names},
                    headers=ORIGIN, status=400)
    assert 'more than the clipboard holds' in alert(res)
    assert 'paste-form' not in res.forms
    # the most that fits is held, and its cookie is one browsers keep
    fits = 0
    for count in range(150, 0, -5):
        res = boss.post('/big/@@manage-selected',
                        {'csrf_token': token, 'do': 'copy',
                         'name': names[:count]},
                        headers=ORIGIN, expect_errors=True)
        if res.status_int == 303:
            fits = count
            break
        assert res.status_int == 400
    assert 40 <= fits < 150
    cookie = boss.cookies[SESSION_COOKIE]
    assert len(cookie) <= 4064
    page = res.follow()
    assert f'{fits} children copied from /big' in page.text
    assert f'and {fits - 10} more' in page.text


def test_writes_need_the_csrf_token(router, boss):
    with Tree(router) as root:
        root['a'] = Folder()
        root['a']['x'] = Item()
        root['b'] = Folder()
    choose(boss, '/a/', ['x'], 'cut')
    boss.post('/b/@@manage-paste', {'do': 'paste'}, headers=ORIGIN,
              status=403)
    boss.post('/b/@@manage-paste', {'do': 'paste', 'csrf_token': 'nope'},
              headers=ORIGIN, status=403)
    boss.post('/a/@@manage-selected', {'do': 'copy', 'name': 'x'},
              headers=ORIGIN, status=403)
    with Tree(router) as root:
        assert list(root['a']) == ['x'] and list(root['b']) == []
    # a stranger's page cannot make it paste either
    token = boss.get('/b/@@manage').forms['paste-form']['csrf_token'].value
    boss.post('/b/@@manage-paste', {'do': 'paste', 'csrf_token': token},
              headers={'Origin': 'https://evil.example'}, status=403)
    with Tree(router) as root:
        assert list(root['a']) == ['x'] and list(root['b']) == []


def test_delete_goes_through_the_confirmation_page(router, boss):
    with Tree(router) as root:
        root['a'] = Folder()
        for name in ('x', 'y', 'z'):
            root['a'][name] = Item()
    res = choose(boss, '/a/', ['x', 'z'], 'delete')
    assert res.location.endswith('/a/@@manage-delete?name=x&name=z')
    confirm = res.follow()
    assert 'Delete 2 children?' in confirm.text
    confirm.forms['delete-form'].submit(headers=ORIGIN, status=303)
    with Tree(router) as root:
        assert list(root['a']) == ['y']
    assert last_note(router) == 'deleted /a/x, /a/z'
    # nothing chosen, an unknown button, a child gone: the page, 4xx
    page = boss.get('/a/@@manage')
    token = page.forms['pick-form']['csrf_token'].value
    res = boss.post('/a/@@manage-selected',
                    {'csrf_token': token, 'do': 'delete'},
                    headers=ORIGIN, status=400)
    assert 'choose children first' in alert(res)
    res = boss.post('/a/@@manage-selected',
                    {'csrf_token': token, 'do': 'explode', 'name': 'y'},
                    headers=ORIGIN, status=400)
    assert 'expected a button' in alert(res)
    res = boss.post('/a/@@manage-selected',
                    {'csrf_token': token, 'do': 'cut', 'name': 'gone'},
                    headers=ORIGIN, status=409)
    assert 'no child named "gone"' in alert(res)
    res = boss.get('/a/@@manage-delete?name=gone', status=400)
    assert "no child named 'gone'" in alert(res)


def test_a_long_selection_is_confirmed_in_place(router, boss):
    names = [f'a-rather-long-child-name-{i:04d}' for i in range(200)]
    with Tree(router) as root:
        big = root['big'] = Folder()
        for name in names:
            big[name] = Item()
    page = boss.get('/big/@@manage?size=500')
    form = page.forms['pick-form']
    for box in form.fields['name']:
        box.checked = True
    confirm = form.submit('do', value='delete', headers=ORIGIN, status=200)
    assert 'Delete 200 children?' in confirm.text
    confirm.forms['delete-form'].submit(headers=ORIGIN, status=303)
    with Tree(router) as root:
        assert len(root['big']) == 0
