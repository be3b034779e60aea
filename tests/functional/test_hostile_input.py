"""Hostile input to the ready app over a real ZEO server: a 4xx with a
clear message, never a 500, and nothing stored.

Requests are raw WSGI calls (WebTest itself cannot carry a path that is
not UTF-8), to the ready app in this process, whose database is a real
``runzeo``. After every refused request the storage's last transaction
is the one before it.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from webtest import TestApp

from pyramid_zeostore import get_databases
from pyramid_zeostore.app import main
from pyramid_zeostore.app.users import add_user
from pyramid_zeostore.databases import close_all

JSON = 'application/json'
FORM = 'application/x-www-form-urlencoded'
SECRET = 'hostile-input-session-secret-0123456789'
BASIC = 'Basic ' + base64.b64encode(b'editor:pw-1234').decode()


class Client:
    """The ready app, called as a WSGI server would call it."""

    def __init__(self, app):
        self.app = app
        self.db = get_databases(app.registry).get('')

    def __call__(self, method, path, query='', body=b'', ctype=JSON,
                 auth=BASIC, **headers):
        environ = {
            'REQUEST_METHOD': method,
            'PATH_INFO': path,  # the WSGI str: bytes as latin-1
            'QUERY_STRING': query,
            'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '80',
            'HTTP_HOST': '127.0.0.1', 'SERVER_PROTOCOL': 'HTTP/1.1',
            'wsgi.url_scheme': 'http', 'wsgi.errors': io.StringIO(),
            'wsgi.input': io.BytesIO(body),
            'CONTENT_LENGTH': str(len(body)), 'CONTENT_TYPE': ctype,
            'HTTP_ACCEPT': JSON,
            **({'HTTP_AUTHORIZATION': auth} if auth else {}),
            **{f'HTTP_{k.upper()}': v for k, v in headers.items()},
        }
        status = []

        def start(line, headers, exc_info=None):
            status.append(int(line.split()[0]))

        data = b''.join(self.app(environ, start))
        return status[0], data

    def last(self):
        self.db.storage.sync()
        return self.db.lastTransaction()

    def refused(self, *args, status=400, **kw):
        """Call; it must answer ``status`` and store nothing. Returns the
        JSON message."""
        before = self.last()
        code, data = self(*args, **kw)
        assert code == status, (args, code, data[:300])
        assert self.last() == before, (args, 'stored something')
        return json.loads(data)['message']


@pytest.fixture
def client(zeo_server, tmp_path):
    app = main({}, **{
        'zodb_uri': zeo_server.uri(),
        'zeostore.lock_file': str(tmp_path / 'lock'),
        'zeostore.secret': SECRET,
    })
    client = Client(app)
    add_user(client.db, 'editor', 'pw-1234', 'editor')
    code, _ = client('POST', '/', body=b'{"name": "doc", "attributes": '
                     b'{"counter": 1, "title": "x"}}')
    assert code == 201
    yield client
    close_all()


def wsgi(raw: bytes) -> str:
    return raw.decode('latin-1')


def nested(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


PATHS = [b'/\xff', b'/\xc0\xaf', b'/\xed\xa0\x80', b'/doc/\xff']


@pytest.mark.parametrize('method', ['GET', 'HEAD', 'DELETE', 'PATCH', 'POST'])
@pytest.mark.parametrize('path', PATHS)
def test_a_path_that_is_not_utf8(client, method, path):
    before = client.last()
    code, data = client(method, wsgi(path), body=b'{}')
    assert code == 400
    if method != 'HEAD':
        assert 'path of the URL is not valid UTF-8' in json.loads(data)[
            'message'
        ]
    assert client.last() == before


@pytest.mark.parametrize('query', ['after=%FF', 'size=%FF', '%FF=1',
                                   'format=%C0%AF'])
def test_a_query_string_that_is_not_utf8(client, query):
    message = client.refused('GET', '/', query)
    assert 'query string of the URL is not valid UTF-8' in message
    code, page = client('GET', '/doc', query, accept='text/html')
    assert code == 400 and b'query string of the URL is not valid' in page


@pytest.mark.parametrize('body, words', [
    ({'name': 'a', 'type': ['item']}, 'type must be'),
    ({'name': 'a', 'type': {'x': 1}}, 'type must be'),
    ({'name': '\ud800'}, 'lone surrogates'),
    ({'name': 'x\u202egpj.exe'}, 'invisible characters'),
    ({'name': 'zero\u200bwidth'}, 'invisible characters'),
    ({'name': '\ufeffbom'}, 'invisible characters'),
    ({'name': ' '}, 'start or end with whitespace'),
    ({'name': 'trailing '}, 'start or end with whitespace'),
    ({'name': '\u3000wide'}, 'start or end with whitespace'),
    ({'name': '\u2028'}, 'line or paragraph separators'),
    ({'name': 'a\u2029b'}, 'line or paragraph separators'),
    ({'name': 'soft\u00adhyphen'}, 'invisible characters'),
    ({'name': '\u3164'}, 'invisible characters'),
    ({'name': 'a', 'type': 'folder', 'attributes': {'keys': 1}},
     'taken by Folder (its method keys)'),
    ({'name': 'a', 'attributes': {'t': 'x\udc80'}}, 'lone surrogates'),
    ({'name': 'a', 'attributes': {'x': nested(33)}}, 'nest at most'),
])
def test_bad_bodies(client, body, words):
    assert words in client.refused('POST', '/', body=json.dumps(body).encode())


@pytest.mark.parametrize('depth', [324, 2500])
def test_json_nested_deeper_than_python_can(client, depth):
    body = b'{"name": "d", "attributes": {"x": ' + b'[' * depth
    body += b']' * depth + b'}}'
    assert 'at most 32 levels' in client.refused('POST', '/', body=body)
    assert 'at most 32 levels' in client.refused('PATCH', '/doc', body=body)


@pytest.mark.parametrize('constant', [b'NaN', b'Infinity', b'-Infinity'])
def test_nan_and_infinity_are_refused(client, constant):
    body = b'{"name": "n", "attributes": {"x": ' + constant + b'}}'
    assert 'not a JSON number' in client.refused('POST', '/', body=body)
    patch = b'{"x": ' + constant + b'}'
    assert 'not a JSON number' in client.refused('PATCH', '/doc', body=patch)


def test_more_digits_than_json_can_carry(client):
    body = b'{"x": ' + b'9' * 5000 + b'}'
    assert 'JSON object' in client.refused('PATCH', '/doc', body=body)


def test_an_increment_past_the_digit_limit(client):
    """Python writes no int of more than 4300 digits: a counter pushed
    past that would make every later GET of it fail."""
    near = json.dumps({'by': 10 ** 3990}).encode()  # 3991 digits: fine
    code, _ = client('POST', '/doc/@@increment', body=near)
    assert code == 200
    huge = json.dumps({'by': 9 * 10 ** 4298}).encode()  # 4299 digits
    for _ in range(2):  # twice would reach 4300 digits
        assert 'would exceed 4000 digits' in client.refused(
            'POST', '/doc/@@increment', body=huge
        )
    code, data = client('GET', '/doc', 'format=json')
    assert code == 200
    assert json.loads(data)['attributes']['counter'] == 10 ** 3990 + 1


def logged_in(client):
    """A browser's session cookie and CSRF token, from the login form."""
    browser = TestApp(client.app)
    form = browser.get('/@@login').forms[0]
    form['name'], form['password'] = 'editor', 'pw-1234'
    form.submit(headers={'Origin': 'http://localhost'}, status=303)
    token = browser.get('/').forms[1]['csrf_token'].value
    return f'zeostore_session={browser.cookies["zeostore_session"]}', token


def test_a_form_that_is_not_utf8_is_refused(client):
    cookie, token = logged_in(client)
    message = client.refused(
        'POST', '/', body=b'name=h%FF&type=item&csrf_token=' +
        token.encode(), ctype=FORM, auth=None, cookie=cookie,
        origin='http://127.0.0.1',
    )
    assert 'form is not valid UTF-8' in message
    code, data = client('GET', '/', 'format=json')
    names = [item['name'] for item in json.loads(data)['items']]
    assert names == ['doc']


def test_two_spellings_of_one_name_cannot_both_exist(client):
    """``é`` (U+00E9) and ``e`` + U+0301: stored as the first, found by
    either, refused the second time."""
    body = json.dumps({'name': 'cafe\u0301'}).encode()
    code, data = client('POST', '/', body=body)
    assert code == 201 and json.loads(data)['name'] == 'caf\u00e9'
    again = json.dumps({'name': 'caf\u00e9'}).encode()
    assert 'exists already' in client.refused('POST', '/', body=again,
                                              status=409)
    path = wsgi('/cafe\u0301'.encode('utf-8'))
    code, data = client('GET', path, 'format=json')
    assert code == 200 and json.loads(data)['name'] == 'caf\u00e9'
