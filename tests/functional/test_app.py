"""The ready app (``egg:pyramid_zeostore``) over a real ZEO server."""

from __future__ import annotations

import pytest
from webtest import TestApp

from pyramid_zeostore import get_databases, main
from pyramid_zeostore.app.users import add_user

#: Writes go as the ``app`` fixture's user (HTTP Basic, JSON bodies).
H: dict = {}
JSON = {'Accept': 'application/json'}
SECRET = 'test-app-session-secret-0123456789abcdef'


@pytest.fixture
def app(zeo_server):
    router = main({}, zodb_uri=zeo_server.uri(), **{
        'zeostore.secret': SECRET,
    })
    add_user(get_databases(router.registry).get(''), 'editor', 'pw-1234',
             'editor')
    testapp = TestApp(router)
    testapp.authorization = ('Basic', ('editor', 'pw-1234'))
    yield testapp
    get_databases(router.registry).close()


def test_empty_root_lists_in_html_and_json(app):
    html = app.get('/')
    assert html.content_type == 'text/html'
    assert '0 item(s)' in html.text
    assert '<form' not in html.text  # forms are for those logged in
    data = app.get('/', headers=JSON).json
    assert data == {
        'name': '',
        'path': '/',
        'type': 'folder',
        'attributes': {},
        'length': 0,
        'start': 0,
        'after': None,
        'size': 50,
        'items': [],
        'next': None,
    }
    assert app.get('/?format=json').json == data


def test_create_read_update_delete(app):
    res = app.post_json(
        '/', {'name': 'docs', 'type': 'folder', 'attributes': {'t': 'D'}},
        headers=H,
    )
    assert res.status_int == 201
    assert res.location == 'http://localhost/docs/'
    res = app.post_json(
        '/docs', {'name': 'a', 'attributes': {'n': 1, 'l': [1, {'x': None}]}},
        headers=H,
    )
    assert res.json == {
        'name': 'a',
        'path': '/docs/a',
        'type': 'item',
        'attributes': {'l': [1, {'x': None}], 'n': 1},
    }
    assert app.get('/docs/a', headers=JSON).json['attributes']['n'] == 1
    assert '&#x27;' in app.get('/docs/a').text or 'n' in app.get('/docs/a')
    res = app.patch_json('/docs/a', {'n': 2, 's': '<b>'}, headers=H)
    assert res.json['attributes'] == {
        'l': [1, {'x': None}],
        'n': 2,
        's': '<b>',
    }
    assert '&lt;b&gt;' in app.get('/docs/a').text  # escaped in HTML
    assert app.get('/docs', headers=JSON).json['attributes'] == {'t': 'D'}
    assert app.delete('/docs/a', headers=H).json == {'deleted': '/docs/a'}
    app.get('/docs/a', status=404)
    assert app.get('/docs', headers=JSON).json['length'] == 0


def test_increment_counts(app):
    app.post_json('/', {'name': 'c'}, headers=H)
    for i in range(1, 4):
        res = app.post_json('/c/@@increment', {}, headers=H)
        assert res.json == {'attribute': 'counter', 'value': i}
    # no body (but JSON's type: Basic wants it): the defaults
    res = app.post('/c/@@increment', headers=H,
                   content_type='application/json')
    assert res.json['value'] == 4
    # without the type it could be another site's fetch(): refused
    app.post('/c/@@increment', headers=H, status=403)
    res = app.post_json(
        '/c/@@increment', {'attribute': 'other', 'by': -2}, headers=H
    )
    assert res.json == {'attribute': 'other', 'value': -2}


def test_pagination_and_next_links(app):
    app.post_json('/', {'name': 'f', 'type': 'folder'}, headers=H)
    for i in range(7):
        app.post_json('/f', {'name': f'i{i}'}, headers=H)
    page = app.get('/f?size=3', headers=JSON).json
    assert [i['name'] for i in page['items']] == ['i0', 'i1', 'i2']
    assert page['next'] == '/f/?after=i2&size=3'  # by key: O(log n)
    second = app.get(page['next'], headers=JSON).json
    assert [i['name'] for i in second['items']] == ['i3', 'i4', 'i5']
    last = app.get(second['next'], headers=JSON).json
    assert [i['name'] for i in last['items']] == ['i6']
    assert last['next'] is None
    # exactly a page left: no empty next page
    assert app.get('/f?after=i3&size=3', headers=JSON).json['next'] is None
    # positional paging still works for small offsets
    assert [i['name'] for i in app.get(
        '/f?start=6&size=3', headers=JSON
    ).json['items']] == ['i6']
    assert 'next page' in app.get('/f?size=3').text
    app.get('/f?start=10001', status=400)  # deeper: use after=


def test_an_ordered_folder_pages_by_position(app):
    app.post_json('/', {'name': 'o', 'type': 'folder'}, headers=H)
    for name in ('c', 'a', 'b'):
        app.post_json('/o', {'name': name}, headers=H)
    router = app.app
    db = get_databases(router.registry).get('')
    conn = db.open()
    try:
        conn.root()['app_root']['o'].set_order(['c', 'a', 'b'])
        conn.transaction_manager.commit()
    finally:
        conn.close()
    page = app.get('/o?size=2', headers=JSON).json
    assert [i['name'] for i in page['items']] == ['c', 'a']
    assert page['next'] == '/o/?after=a&size=2'
    rest = app.get(page['next'], headers=JSON).json
    assert [i['name'] for i in rest['items']] == ['b']
    # a name no longer there (deleted since): a 400 that says so, no 500
    res = app.get('/o?after=gone', headers=JSON, status=400)
    assert 'ordered folder' in res.json['message']


def test_browser_form_posts_with_csrf_token(app):
    app.authorization = None
    login = app.get('/@@login').forms[0]
    login['name'], login['password'] = 'editor', 'pw-1234'
    login.submit(headers={'Origin': 'http://localhost'}, status=303)
    res = app.get('/')
    form = res.forms[1]
    form['name'] = 'from-form'
    form['type'] = 'folder'
    res = form.submit(headers={'Origin': 'http://localhost'})
    assert res.status_int == 303
    assert app.get('/from-form', headers=JSON).json['type'] == 'folder'


@pytest.mark.parametrize(
    'method, path, body, status',
    [
        ('post_json', '/', {'name': 'a/b'}, 400),
        ('post_json', '/', {'name': '..'}, 400),
        ('post_json', '/', {'name': '@@x'}, 400),
        ('post_json', '/', {'name': ''}, 400),
        ('post_json', '/', {'name': 5}, 400),
        ('post_json', '/', {'name': 'x' * 256}, 400),
        ('post_json', '/', {'name': 'ok', 'type': 'table'}, 400),
        ('post_json', '/', {'name': 'ok', 'attributes': []}, 400),
        ('post_json', '/', {'name': 'ok', 'attributes': {'_p': 1}}, 400),
        ('post_json', '/', {'name': 'ok', 'type': 'folder',
                            'attributes': {'data': 1}}, 400),
        ('post_json', '/', {'name': 'ok', 'type': 'folder',
                            'attributes': {'order': ['ok']}}, 400),
        ('patch_json', '/', {'order': ['zz']}, 400),
        ('post_json', '/', [1, 2], 400),
        ('patch_json', '/', {'keys': 1}, 400),
        ('delete', '/', None, 400),
        ('post_json', '/@@increment', {'by': 'x'}, 400),
        ('post_json', '/@@increment', {'by': True}, 400),
        ('post_json', '/@@increment', {'attribute': '__class__'}, 400),
        ('get', '/missing', None, 404),
        ('get', '/missing/deeper', None, 404),
        ('get', '/@@nope', None, 404),
        ('get', '/?start=x', None, 400),
        ('get', '/?size=100000', None, 400),
        ('get', '/?start=-1', None, 400),
    ],
)
def test_bad_input_is_4xx_never_500(app, method, path, body, status):
    kwargs = {'headers': {**H, **JSON}, 'status': status}
    if body is not None:
        kwargs['params'] = body
    res = getattr(app, method)(path, **kwargs)
    assert res.status_int == status


def test_bad_json_body_and_non_number_counter(app):
    res = app.post(
        '/', '{not json', headers={**H, 'Content-Type': 'application/json'},
        status=400,
    )
    assert res.json['message'] == (
        'expected a JSON object as the body (Expecting property name '
        'enclosed in double quotes: line 1 column 2 (char 1))'
    )
    app.post_json('/', {'name': 's', 'attributes': {'counter': 'x'}},
                  headers=H)
    res = app.post_json('/s/@@increment', {}, headers=H, status=400)
    assert 'not a whole number' in res.json['message']


def test_duplicate_name_is_409(app):
    app.post_json('/', {'name': 'a'}, headers=H)
    res = app.post_json('/', {'name': 'a'}, headers=H, status=409)
    assert res.json['message'] == "'a' exists already"


@pytest.mark.parametrize('method', ['post_json', 'patch_json', 'delete'])
def test_unsafe_methods_need_a_user(app, method):
    app.post_json('/', {'name': 'x'}, headers=H)
    app.authorization = None
    path = '/' if method == 'post_json' else '/x'
    kwargs = {'status': 401}
    if method != 'delete':
        kwargs['params'] = {'name': 'y'}
    # the attack that once worked: a cookie and header pair of its own
    app.set_cookie('csrf_token', 'x')
    getattr(app, method)(path, headers={'X-CSRF-Token': 'x', **JSON},
                         **kwargs)
    getattr(app, method)(path, headers=JSON, **kwargs)
    assert app.get('/', headers=JSON).json['length'] == 1


class Plain:
    """A child that is no persistent object (kept in its folder's
    record): a value, however it carries attributes."""

    def __init__(self):
        self.title = 'loose'


def test_a_plain_value_child_is_shown_read_only(app):
    """Numbers, text, lists... a shell put in a folder: shown (JSON: the
    value, or a bounded repr), deleted through their folder, never given
    attributes; a 4xx, never a 500."""
    app.post_json('/', {'name': 'f', 'type': 'folder'}, headers=H)
    db = get_databases(app.app.registry).get('')
    conn = db.open()
    try:
        folder = conn.root()['app_root']['f']
        folder['i'] = 1
        folder['s'] = '<b>bold</b>'
        folder['n'] = None
        folder['d'] = {'k': [1, 2]}
        folder['t'] = (1, 'x' * 5000)
        folder['p'] = Plain()
        conn.transaction_manager.commit()
    finally:
        conn.close()
    listing = app.get('/f', headers=JSON).json['items']
    assert {i['name']: i['type'] for i in listing} == {
        'd': 'value', 'i': 'value', 'n': 'value', 'p': 'value',
        's': 'value', 't': 'value'}
    assert app.get('/f/i?format=json').json == {
        'name': 'i', 'path': '/f/i', 'type': 'value', 'attributes': {},
        'value': 1}
    assert app.get('/f/n', headers=JSON).json['value'] is None
    assert app.get('/f/d', headers=JSON).json['value'] == {'k': [1, 2]}
    assert app.get('/f/d/k', headers=JSON).json['path'] == '/f/d/k'
    shown = app.get('/f/t', headers=JSON).json
    assert 'value' not in shown and shown['repr'].startswith("(1, 'xxx")
    assert len(shown['repr']) <= 1000
    assert app.get('/f/p', headers=JSON).json['repr'] == (
        '<tests.functional.test_app.Plain>')  # its class's code not run
    # Below a value: not found (str and tuple raise TypeError for a text
    # key, which Pyramid's traverser would let out as a 500).
    for path in ('/f/s/x', '/f/t/0/y', '/f/i/x', '/f/d/k/0'):
        app.get(path, status=404)
    page = app.get('/f/s')
    assert page.content_type == 'text/html'
    assert '&lt;b&gt;bold&lt;/b&gt;' in page.text and '<b>' not in page.text
    for path in ('/f/i', '/f/p'):
        res = app.patch_json(path, {'x': 1}, headers={**H, **JSON},
                             status=405)
        assert res.headers['Allow'] == 'GET, HEAD, OPTIONS, DELETE'
        assert f'{path} is a plain value' in res.json['message']
    res = app.post_json('/f/i/@@increment', {}, headers=H, status=405)
    assert 'has no attributes' in res.json['message']
    assert app.options('/f/i').headers['Allow'] == (
        'GET, HEAD, OPTIONS, DELETE')
    res = app.delete('/f/d/k', headers={**H, **JSON}, status=400)
    assert 'a member of a dict, not a child of a folder' in (
        res.json['message'])
    assert app.delete('/f/i', headers=H).json == {'deleted': '/f/i'}
    app.get('/f/i', status=404)
    assert app.get('/f', headers=JSON).json['length'] == 5


def test_attribute_names_a_class_takes_are_refused_saying_so(app):
    app.post_json('/', {'name': 'f', 'type': 'folder'}, headers=H)
    for name, taken in [('keys', 'method keys'), ('add', 'method add'),
                        ('order', 'property order')]:
        res = app.patch_json('/f', {name: ['x']}, headers={**H, **JSON},
                             status=400)
        assert res.json['message'] == (
            f"'{name}' is not an attribute you can set: the name is "
            f'taken by Folder (its {taken})')
    res = app.patch_json('/f', {'data': 1}, headers={**H, **JSON},
                         status=400)
    assert 'taken by Folder (folders keep their children there' in (
        res.json['message'])
    res = app.patch_json('/f', {'_p_x': 1}, headers={**H, **JSON},
                         status=400)
    assert 'expected a name of letters, digits and _' in res.json['message']
    app.post_json('/f', {'name': 'q'}, headers=H, status=201)  # works
