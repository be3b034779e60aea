"""Random requests to the ready app over a real ZEO server (hypothesis).

Hypothesis draws each request's method, path (the bytes a server would
pass, so not always UTF-8), query string, body, content type and headers
(credentials, Origin, Referer, Host, Accept, cookies, Content-Length);
whatever it sends, the app must answer

1. without a 5xx (nor an exception out of the WSGI app), and
2. after any 4xx, with the storage's last transaction the one before
   the request: a refusal stores nothing.

A ``Host`` that is certainly not this site must be a 400. 2xx and 3xx
writes may store what they like. The database lives on across examples
(a few known objects are made first, and remade after a DELETE): what
one example creates, later ones may find. Requests are raw WSGI calls,
as in test_hostile_input.py. Three kinds are drawn: anything at all,
well-formed API calls (which store odd values for the others to read)
and what a browser posts (forms, the session and its CSRF token).

The bugs it found (both fixed) are at the end, each a minimal test;
``KNOWN_BUGS`` would tolerate a bug found and not yet fixed as exactly
that exception (it is empty). ``PROPERTY_API_EXAMPLES=5000`` hunts
longer.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import traceback
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from webtest import TestApp

from pyramid_zeostore import get_databases
from pyramid_zeostore.app import main
from pyramid_zeostore.app.users import add_user
from pyramid_zeostore.databases import close_all

JSON = 'application/json'
FORM = 'application/x-www-form-urlencoded'
SECRET = 'property-api-session-secret-0123456789'
EDITOR = ('editor', 'pw-editor-1234')
VIEWER = ('viewer', 'pw-viewer-1234')
HOME = '127.0.0.1'  # REMOTE_ADDR of every request but wrong logins
TOKEN = '{token}'  # replaced by the session's CSRF token when sent
#: More for a longer hunt: PROPERTY_API_EXAMPLES=5000 pytest ...
EXAMPLES = int(os.environ.get('PROPERTY_API_EXAMPLES', 350))
LOGIN_EXAMPLES = max(EXAMPLES // 8, 10)


def basic(name: str, password: str) -> str:
    raw = f'{name}:{password}'.encode('utf-8', 'surrogatepass')
    return 'Basic ' + base64.b64encode(raw).decode()


# -- the client ---------------------------------------------------------------


class Recorder(logging.Handler):
    """The app's log records of ERROR and worse (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter('%(name)s: %(message)s'))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass(frozen=True)
class Request:
    """One drawn request, with placeholders (``auth`` kinds, ``TOKEN``)
    that :meth:`Client.environ` makes real."""

    method: str
    path: bytes
    query: bytes
    body: bytes
    ctype: str | None
    auth: str  # editor viewer none session malformed wrong
    auth_value: str | None  # the malformed or wrong header
    remote: str | None  # REMOTE_ADDR of a wrong login (None: unique)
    origin: str | None
    referer: str | None
    host: str | None  # None: no Host header
    accept: str | None
    cookie: str | None
    csrf: str | None
    length: str  # how Content-Length is sent


class Client:
    """The ready app, called as a WSGI server would call it."""

    def __init__(self, app) -> None:
        self.app = app
        self.db = get_databases(app.registry).get('')
        self.cookie = self.token = ''
        self.addresses = 0
        self.errors = io.StringIO()

    def __call__(self, environ: dict) -> tuple[int, dict, bytes]:
        status = []

        def start(line, headers, exc_info=None):
            status[:] = [int(line.split()[0]), dict(headers)]
            return lambda data: None

        result = self.app(environ, start)
        try:
            data = b''.join(result)
        finally:
            close = getattr(result, 'close', None)
            if close is not None:
                close()
        return status[0], status[1], data

    def base(self, method: str, path: bytes, query: bytes = b'',
             body: bytes = b'') -> dict:
        return {
            'REQUEST_METHOD': method, 'SCRIPT_NAME': '',
            'PATH_INFO': path.decode('latin-1'),  # the WSGI str
            'QUERY_STRING': query.decode('latin-1'),
            'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '80',
            'HTTP_HOST': '127.0.0.1', 'SERVER_PROTOCOL': 'HTTP/1.1',
            'REMOTE_ADDR': HOME, 'wsgi.version': (1, 0),
            'wsgi.url_scheme': 'http', 'wsgi.errors': self.errors,
            'wsgi.input': io.BytesIO(body),
            'wsgi.multithread': False, 'wsgi.multiprocess': False,
            'wsgi.run_once': False, 'CONTENT_LENGTH': str(len(body)),
        }

    def api(self, method: str, path: str, data=None) -> int:
        """A well-formed JSON request as the editor: its status."""
        body = b'' if data is None else json.dumps(data).encode()
        environ = self.base(method, path.encode(), body=body)
        environ.update(HTTP_AUTHORIZATION=basic(*EDITOR),
                       CONTENT_TYPE=JSON, HTTP_ACCEPT=JSON)
        return self(environ)[0]

    def environ(self, req: Request) -> dict:
        body = req.body.replace(TOKEN.encode(), self.token.encode())
        environ = self.base(req.method, req.path, req.query, body)
        extra = {
            'CONTENT_TYPE': req.ctype, 'HTTP_ORIGIN': req.origin,
            'HTTP_REFERER': req.referer, 'HTTP_HOST': req.host,
            'HTTP_ACCEPT': req.accept, 'HTTP_COOKIE': req.cookie,
        }
        if req.auth == 'editor':
            extra['HTTP_AUTHORIZATION'] = basic(*EDITOR)
        elif req.auth == 'viewer':
            extra['HTTP_AUTHORIZATION'] = basic(*VIEWER)
        elif req.auth == 'session':
            extra['HTTP_COOKIE'] = self.cookie
        elif req.auth in ('malformed', 'wrong'):
            extra['HTTP_AUTHORIZATION'] = req.auth_value
        if req.auth == 'wrong':
            # Failed logins are throttled per address: a new one each
            # time unless drawn from a small shared pool (then 429s).
            self.addresses += 1
            n = self.addresses
            extra['REMOTE_ADDR'] = req.remote if req.remote is not None else (
                f'10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}'
            )
        if req.csrf is not None:
            extra['HTTP_X_CSRF_TOKEN'] = req.csrf.replace(TOKEN, self.token)
        if req.length == 'absent':
            extra['CONTENT_LENGTH'] = None
        elif req.length == 'short':
            extra['CONTENT_LENGTH'] = str(len(body) // 2)
        elif req.length == 'padded':
            extra['CONTENT_LENGTH'] = f' {len(body)} '
        elif req.length == 'chunked':
            extra['CONTENT_LENGTH'] = None
            extra['HTTP_TRANSFER_ENCODING'] = 'chunked'
        elif req.length == 'terminated':
            extra['CONTENT_LENGTH'] = None
            extra['wsgi.input_terminated'] = True
        elif req.length != 'exact':
            extra['CONTENT_LENGTH'] = req.length
        for key, value in extra.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        return environ

    def last(self) -> bytes:
        self.db.storage.sync()
        return self.db.lastTransaction()


#: (method, path, JSON body): the known objects, made first and again
#: after any DELETE that succeeded.
SEEDS = [
    ('POST', '/', {'name': 'doc', 'attributes': {'counter': 1,
                                                 'title': 'x'}}),
    ('POST', '/', {'name': 'box', 'type': 'folder'}),
    ('POST', '/box', {'name': 'inner', 'type': 'folder'}),
    ('POST', '/box', {'name': 'leaf', 'attributes': {
        'counter': 10 ** 3990, 'text': 'é', 'list': [1, [2, {'a': None}]],
    }}),
    ('POST', '/', {'name': 'é', 'attributes': {'big': 'x' * 3000}}),
    ('POST', '/', {'name': 'a b', 'type': 'folder'}),
    ('POST', '/', {'name': 'many', 'type': 'folder'}),
    *[('POST', '/many', {'name': f'c{i}'}) for i in range(5)],
]


def seed(client: Client) -> None:
    for method, path, data in SEEDS:
        assert client.api(method, path, data) in (201, 409)


@pytest.fixture
def client(zeo_server, tmp_path):
    app = main({}, **{
        'zodb_uri': zeo_server.uri(),
        'zeostore.lock_file': str(tmp_path / 'lock'),
        'zeostore.secret': SECRET,
    })
    client = Client(app)
    add_user(client.db, *EDITOR, 'editor')
    add_user(client.db, *VIEWER, 'viewer')
    seed(client)
    browser = TestApp(app)
    form = browser.get('/@@login').forms[0]
    form['name'], form['password'] = EDITOR
    form.submit(headers={'Origin': 'http://localhost'}, status=303)
    client.token = browser.get('/').forms[1]['csrf_token'].value
    client.cookie = (
        f'zeostore_session={browser.cookies["zeostore_session"]}'
    )
    recorder = Recorder()
    logging.getLogger().addHandler(recorder)
    client.recorder = recorder
    yield client
    logging.getLogger().removeHandler(recorder)
    close_all()


# -- strategies ---------------------------------------------------------------

METHODS = ['GET', 'POST', 'PATCH', 'DELETE', 'HEAD', 'GET', 'POST',
           'PUT', 'OPTIONS', 'TRACE']
TCHAR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" \
    "!#$%&'*+-.^_`|~"
#: Names of objects that are, or may come to be (creates draw them too).
KNOWN = ['doc', 'box', 'inner', 'leaf', 'é', 'a b', 'many', 'c0', 'c4',
         'new', 'n1', 'n2']
ODD_TEXT = ['\u202egpj.exe', 'zero\u200bwidth', '\ufeffbom', '\ud800',
            'x\udc80', '\x00', '\x85', '\u2028', '..', '.', '@@x', '++x',
            'a/b', ' a', 'x' * 256, 'e\u0301', 'ﬁ', '\U0001f600', '']
SPECIAL_SEGMENTS = [
    b'\xff', b'\xc0\xaf', b'\xed\xa0\x80', b'%FF', b'%C0%AF',
    b'%ED%A0%80', b'..', b'.', b'', b'@@increment', b'@@login',
    b'@@logout', b'@@health', b'@@', b'@@nothing', b'++etc++site',
    b'increment', b'login', b'\x00', b'\\', b';x', b'%2F', b'%00',
    b'__class__', b'_data', b'data', b'%40%40increment',
]

chars = st.one_of(
    st.characters(),
    st.sampled_from('\u202e\u200b\ufeff\x00\x85\u2028/@+.:é%'),
    st.integers(0xD800, 0xDFFF).map(chr),  # lone surrogates
)
text = st.text(chars, max_size=10)


def often(common, rare, one_in: int = 4):
    """``common`` mostly, ``rare`` about once in ``one_in`` (shrinking
    goes to ``common``)."""
    return st.integers(0, one_in - 1).flatmap(
        lambda i: rare if i == one_in - 1 else common
    )


def utf8(s: str) -> bytes:
    return s.encode('utf-8', 'surrogatepass')  # surrogates: not UTF-8


segment = st.one_of(
    st.sampled_from([utf8(name) for name in KNOWN]),
    st.sampled_from(SPECIAL_SEGMENTS),
    st.sampled_from([utf8(name) for name in ODD_TEXT]),
    text.map(utf8),
    st.binary(max_size=6),
)


#: Paths of objects that are, or may come to be, and views on them.
FOLDERS = ['', 'box', 'box/inner', 'a b', 'many', 'new']
ITEMS = ['doc', 'box/leaf', 'é', 'many/c0', 'many/c4', 'n1', 'box/n2',
         'box/inner/new']
VIEWS = [b'@@increment', b'@@increment', b'@@login', b'@@logout',
         b'increment', b'@@health', b'@@']


@st.composite
def paths(draw) -> bytes:
    """Mostly a path to an object that is (or may be), perhaps a view or
    a stray segment after it; else any segments at all."""
    if draw(st.integers(0, 2)) < 2:
        path = b'/' + utf8(draw(st.sampled_from(FOLDERS) | st.sampled_from(
            ITEMS
        )))
        tail = draw(st.integers(0, 5))
        if tail == 4:
            path = path.rstrip(b'/') + b'/' + draw(st.sampled_from(VIEWS))
        elif tail == 5:
            path = path.rstrip(b'/') + b'/' + draw(segment)
    else:
        path = b'/' + b'/'.join(draw(st.lists(segment, max_size=4)))
    if draw(st.integers(0, 9)) == 9:
        path += b'/'
    return draw(often(st.just(path), st.sampled_from(
        [b'', b'//doc', b'/./doc', b'/box/../doc', b'/doc/..']
    ), 20))


query_value = st.one_of(
    st.sampled_from([b'', b'0', b'1', b'2', b'50', b'1000', b'1001',
                     b'10000', b'10001', b'-1', b'1e3', b'1_0', b'%205',
                     b'%D9%A3', b'9' * 5000, b'json', b'JSON', b'html',
                     b'%FF', b'%C0%AF', b'%ED%A0%80', b'\xff', b'c0',
                     b'doc', b'%2F%2Fevil.example', b'/box']),
    st.integers(-10 ** 6, 10 ** 30).map(lambda i: str(i).encode()),
    text.map(lambda s: quote(utf8(s), safe='').encode()),
    st.binary(max_size=6),
)
query_key = st.one_of(
    st.sampled_from([b'after', b'size', b'start', b'format',
                     b'came_from']),
    st.sampled_from([b'', b'%FF', b'x', b'size[]', b'a%00']),
    st.binary(max_size=4),
)


@st.composite
def queries(draw) -> bytes:
    pairs = draw(st.lists(st.tuples(query_key, query_value,
                                    st.booleans()), max_size=3))
    return b'&'.join(k + b'=' + v if eq else k for k, v, eq in pairs)


ATTR_NAMES = st.one_of(
    st.sampled_from(['counter', 'title', 'x', 'big', 'text', 'list']),
    st.sampled_from(['_private', '__class__', '__dict__', 'data', 'page',
                     'add', 'keys', '_p_jar', '_p_oid', '_p_changed',
                     '1x', 'a-b', '', 'é', 'ﬁ', '\ud800', 'x' * 1000]),
    text,
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), text,
    st.floats(),  # NaN and infinities too: json.dumps writes them
    st.sampled_from([10 ** 4299, -10 ** 4299, 2 ** 63, 2 ** 64 + 1,
                     1e308, 1.7976931348623157e308, 5e-324, -0.0,
                     'x' * 300_000]),
)
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4)
    | st.dictionaries(st.one_of(ATTR_NAMES, text), kids, max_size=4),
    max_leaves=10,
)


def nested(depth: int, inner=1):
    for i in range(depth):
        inner = [inner] if i % 2 else {'k': inner}
    return inner


values = st.one_of(
    json_values,
    st.integers(28, 36).map(nested),
)
names = st.one_of(
    st.sampled_from(KNOWN),
    st.sampled_from(ODD_TEXT),
    text,
    st.sampled_from([None, 1, 1.5, True, [], {}, ['doc']]),
)
kinds = st.sampled_from(['item', 'folder', 'Item', '', None, ['item'],
                         {'x': 1}, 1])
attributes = st.one_of(
    st.dictionaries(ATTR_NAMES, values, max_size=3),
    values,
)


GOOD_ATTRS = st.sampled_from(['counter', 'title', 'x', 'text', 'list'])
good_attributes = st.dictionaries(GOOD_ATTRS, json_values, max_size=3)
fresh_names = st.text(
    'abcdefghijklmnopqrstuvwxyz0123456789é -_.~+@', min_size=1, max_size=8
)


@st.composite
def create_bodies(draw) -> dict:
    """Mostly a create that may succeed, with now and then a bad part."""
    body = {}
    if draw(st.integers(0, 9)) < 9:
        body['name'] = draw(often(fresh_names | st.sampled_from(KNOWN),
                                  names))
    if draw(st.booleans()):
        body['type'] = draw(often(st.sampled_from(['item', 'folder']),
                                  kinds))
    if draw(st.booleans()):
        body['attributes'] = draw(often(good_attributes, attributes))
    if draw(st.integers(0, 5)) == 5:
        body.update(draw(st.dictionaries(text, values, max_size=2)))
    return body


patch_bodies = often(
    good_attributes,
    st.one_of(st.dictionaries(ATTR_NAMES, values, max_size=3), values),
)
increment_bodies = often(
    st.fixed_dictionaries({}, optional={
        'attribute': st.sampled_from(['counter', 'x']),
        'by': st.integers(-10, 10),
    }),
    st.fixed_dictionaries({}, optional={
        'attribute': st.one_of(ATTR_NAMES,
                               st.sampled_from([1, None, []])),
        'by': st.one_of(
            st.integers(), st.floats(), st.booleans(), st.none(), text,
            st.sampled_from([10 ** 3990, -10 ** 3990, 9 * 10 ** 4298]),
        ),
    }),
)
RAW_BODIES = [
    b'NaN', b'Infinity', b'{"x": NaN}', b'{"x": Infinity}',
    b'{"x": -Infinity}', b'{"name": "n", "attributes": {"x": NaN}}',
    b'[' * 500, b'{"a":' * 500, b'{"x": ' + b'[' * 2500 + b']' * 2500
    + b'}', b'{"x": 1e400}', b'{"x": -1e400}', b'{"by": 1e400}',
    b'{"x": 1e308}', b'{"x": ' + b'9' * 5000 + b'}',
    b'{"by": ' + b'9' * 4299 + b'}', b'{"x": ' + b'9' * 4300 + b'}',
    b'{"name": "h", "attributes": {"x": ' + b'9' * 4300 + b'}}',
    b'{"x": "\\ud800"}', b'{"name": "\\udc80"}', b'{"\\ud800": 1}',
    b'\xff\xfe', b'{"name": "\xff"}', b'{"x": "\xed\xa0\x80"}',
    b'\xef\xbb\xbf{"name": "bom"}', b'\x00', b'{"name": "d", "name": "e"}',
    b'{"by": true}', b'{"by": 1.5}', b'{"attribute": "title"}',
    b'{"attribute": "big"}', b'{"attribute": "list"}', b'', b'null',
    b'[]', b'"str"', b'{}', b'{"a": 1,}', b'{"a"', b'0' * 100,
    b'{"attributes": {"x": 1}, "name": "raw"}',
]


def dump(value, ascii_only: bool) -> bytes:
    return utf8(json.dumps(value, ensure_ascii=ascii_only))


def json_bodies(shape) -> st.SearchStrategy:
    return st.tuples(shape, st.booleans()).map(lambda v: dump(*v))


FORM_KEYS = ['name', 'type', 'csrf_token', 'came_from', 'password',
             'attributes', 'x']
form_fields = st.lists(st.tuples(
    st.sampled_from(FORM_KEYS),
    st.one_of(st.sampled_from(KNOWN + ODD_TEXT + [TOKEN, 'item',
                                                   'folder']), text),
), max_size=4)


def form_body(fields, mode: int) -> bytes:
    if mode == 0:
        return urlencode([(k, utf8(v)) for k, v in fields]).encode()
    # Fields as raw text, %-escapes and all (not always UTF-8)
    return b'&'.join(k.encode() + b'=' + utf8(v) for k, v in fields)


RAW_FORMS = [b'name=h%FF&type=item', b'%%%', b'=&=&', b'name',
             b'name=a&name=b', b'name=%C0%AF', b'csrf_token=' +
             TOKEN.encode() + b'&name=%ED%A0%80', b'\xff=\xfe']
BOUNDARY = 'xYzZY'
MULTIPART = 'multipart/form-data; boundary=' + BOUNDARY


def multipart(fields, file: bytes | None, broken: int) -> bytes:
    out = b''
    for key, value in fields:
        out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; '
                f'name="{key}"\r\n\r\n').encode() + utf8(value) + b'\r\n'
    if file is not None:
        out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; '
                'name="name"; filename="f.bin"\r\nContent-Type: '
                'application/octet-stream\r\n\r\n').encode() + file
        out += b'\r\n'
    out += f'--{BOUNDARY}--\r\n'.encode()
    if broken == 1:
        out = out[:len(out) // 2]
    elif broken == 2:
        out = out.replace(b'Content-Disposition', b'Content-Dispostion')
    elif broken == 3:  # a part that is multipart, its boundary bad
        out = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; '
               'name="a"\r\nContent-Type: multipart/mixed; boundary='
               f'""\r\n\r\nzz\r\n').encode() + out
    return out


FORM_CTYPES = [FORM + '; charset=UTF-8', FORM + '; charset=utf8',
               FORM + '; charset=latin-1', FORM + '; charset=x', FORM + ';']
MULTIPART_CTYPES = [
    'multipart/form-data', 'multipart/form-data; boundary=',
    'multipart/form-data; boundary=' + 'b' * 201,
    'multipart/form-data; boundary=\xe9', MULTIPART + '; charset=latin-1',
    f'multipart/form-data; boundary="{BOUNDARY}"', 'multipart/mixed',
]


CTYPES = [JSON, FORM, 'text/plain', MULTIPART, None, '',
          'application/json; charset=utf-8', 'application/json; x',
          'application/JSON', 'multipart/form-data',
          'multipart/form-data; boundary=', 'text/plain; charset=utf-8',
          'a/b/c', ';;;', 'application/x-www-form-urlencoded; charset=l',
          'application/json\xe9']


@st.composite
def bodies(draw, method: str, path: bytes) -> tuple[bytes, str | None]:
    """A body and its content type, mostly shaped for ``method`` and
    ``path``."""
    kind = draw(st.sampled_from(
        ['shaped'] * 5 + ['raw', 'json', 'form', 'multipart', 'binary',
                          'empty']
    ))
    ctype = JSON
    if kind == 'shaped':
        if method == 'PATCH':
            shape = patch_bodies
        elif method == 'POST' and path.endswith(b'increment'):
            shape = increment_bodies
        elif method == 'POST':
            shape = create_bodies()
        else:
            shape = values
        body = draw(json_bodies(shape))
    elif kind == 'raw':
        body = draw(st.sampled_from(RAW_BODIES))
    elif kind == 'json':
        body = draw(json_bodies(values))
    elif kind == 'form':
        ctype = draw(often(st.just(FORM), st.sampled_from(FORM_CTYPES)))
        body = draw(st.one_of(
            st.builds(form_body, form_fields, st.integers(0, 1)),
            st.sampled_from(RAW_FORMS),
        ))
    elif kind == 'multipart':
        ctype = draw(often(st.just(MULTIPART),
                           st.sampled_from(MULTIPART_CTYPES)))
        body = multipart(draw(form_fields), draw(
            st.none() | st.binary(max_size=20)
        ), draw(st.integers(0, 3)))
    elif kind == 'binary':
        ctype = draw(st.sampled_from([JSON, 'application/octet-stream']))
        body = draw(st.binary(max_size=64))
    else:
        body, ctype = b'', draw(st.sampled_from([JSON, None]))
    ctype = draw(often(st.just(ctype), st.sampled_from(CTYPES)))
    return body, ctype


#: Hosts that are not this site's: every request must be refused 400
#: (but the open paths: the health check answers any host).
BAD_HOSTS = [
    '', 'evil.example', 'localhost:abc', 'localhost:99999', '[::1',
    'local host', 'localhost/x', 'localhost#x', 'user@localhost',
    'localhost?x', '\x00', 'localhost.evil', 'localhost.', ' localhost',
    '127.0.0.1:-1', '%6cocalhost',
    utf8('ｌｏｃａｌｈｏｓｔ').decode('latin-1'),
    'localhost:+80', 'localhost: 80', '127.0.0.2', '[::2]', '*',
    'localhost\r\nX: y', '[localhost]',
]
hosts = st.one_of(
    st.sampled_from(['127.0.0.1', '127.0.0.1', 'localhost',
                     'localhost:6543', '127.0.0.1:80', 'LOCALHOST',
                     '[::1]', '[::1]:8080', None]),
    st.sampled_from(BAD_HOSTS),
    text.map(lambda s: utf8(s).decode('latin-1')),
)
MALFORMED = [
    'Basic !!!', 'Basic ' + base64.b64encode(b'nocolon').decode(),
    'Basic ' + base64.b64encode(b'\xff:\xfe').decode(), 'Bearer x',
    'Basic', 'Basic ', 'basic ' + basic(*EDITOR)[6:],
    ' Basic   ' + basic(*EDITOR)[6:] + ' ', 'Digest username="editor"',
    'Basic ' + basic(*EDITOR)[6:-2], 'Basic =', 'Basic \xe9',
]
ORIGINS = [None, None, None, 'http://127.0.0.1', 'http://localhost',
           'http://evil.example', 'null', 'https://127.0.0.1',
           'http://127.0.0.1:80', 'http://127.0.0.1 http://evil.example',
           'junk', '', 'http://[::1', 'http://127.0.0.1:99999']


@st.composite
def wrong_credentials(draw) -> tuple[str, str | None]:
    name = draw(st.sampled_from(['editor', 'nobody', 'viewer']) | text)
    password = draw(st.sampled_from(['wrong', '']) | text)
    remote = draw(st.sampled_from([None, None, '10.9.9.9', '10.9.9.8',
                                   '']))
    return basic(name, password), remote


@st.composite
def requests(draw) -> Request:
    method = draw(often(st.sampled_from(METHODS),
                        st.text(TCHAR, min_size=1, max_size=8), 10))
    path = draw(paths())
    body, ctype = draw(bodies(method, path))
    auth = draw(st.sampled_from(
        ['editor'] * 6 + ['viewer', 'none', 'none', 'session', 'session',
                          'session', 'malformed', 'wrong']
    ))
    auth_value = remote = None
    if auth == 'malformed':
        auth_value = draw(st.sampled_from(MALFORMED))
    elif auth == 'wrong':
        auth_value, remote = draw(wrong_credentials())
    csrf = None
    if auth == 'session' or draw(st.integers(0, 9)) == 9:
        csrf = draw(st.sampled_from([TOKEN, TOKEN, None, 'wrong', '']))
    cookie = None
    if draw(st.integers(0, 9)) == 9:
        cookie = draw(st.sampled_from([
            'zeostore_session=garbage', 'zeostore_session="',
            'zeostore_session=' + 'A' * 5000, '; ;=', 'a=b; a=c',
        ]) | text.map(lambda s: utf8(s).decode('latin-1')))
    return Request(
        method=method,
        path=path,
        query=draw(often(st.just(b''), queries(), 2)),
        body=body,
        ctype=ctype,
        auth=auth,
        auth_value=auth_value,
        remote=remote,
        origin=draw(often(st.sampled_from([None, 'http://127.0.0.1']),
                          st.sampled_from(ORIGINS))),
        referer=draw(often(st.none(), st.sampled_from(
            ['http://127.0.0.1/', 'http://evil.example/x', 'junk', '']
        ), 8)),
        host=draw(often(st.just('127.0.0.1'), hosts, 5)),
        accept=draw(st.sampled_from([
            JSON, JSON, None, 'text/html', '*/*',
            'application/json;q=0.1, text/html', 'junk;;;',
            'text/*;q=x', 'application/json;q=0',
        ])),
        cookie=cookie,
        csrf=csrf,
        length=draw(often(st.just('exact'), st.sampled_from(
            ['absent', 'short', 'padded', 'chunked', 'terminated', 'abc',
             '-1', '', '1e3', '99999999999999999999']
        ), 10)),
    )


def folder_path(name: str) -> bytes:
    return b'/' + utf8(name)


@st.composite
def api_calls(draw) -> Request:
    """A well-formed API call by the editor (that may still be refused,
    e.g. a name that exists): these store the odd values that the other
    requests then read back."""
    kind = draw(st.sampled_from(['create', 'create', 'patch', 'increment',
                                 'get', 'get', 'delete']))
    method, query, data = 'GET', b'', None
    folder = st.sampled_from(FOLDERS).map(folder_path)
    anything = folder | st.sampled_from(ITEMS).map(folder_path)
    if kind == 'create':
        method, path = 'POST', draw(folder)
        data = {'name': draw(fresh_names | st.sampled_from(KNOWN)),
                'type': draw(st.sampled_from(['item', 'folder'])),
                'attributes': draw(good_attributes)}
    elif kind == 'patch':
        method, path, data = 'PATCH', draw(anything), draw(good_attributes)
    elif kind == 'increment':
        method = 'POST'
        path = draw(anything).rstrip(b'/') + b'/@@increment'
        data = draw(increment_bodies)
    elif kind == 'delete':
        method, path = 'DELETE', draw(anything)
    else:
        path = draw(anything)
        query = draw(st.sampled_from([b'', b'format=json', b'size=1',
                                      b'after=c0&size=2', b'start=3']))
    body = b'' if data is None else draw(json_bodies(st.just(data)))
    return Request(
        method=method, path=path, query=query, body=body, ctype=JSON,
        auth='editor', auth_value=None, remote=None, origin=None,
        referer=None, host='127.0.0.1',
        accept=draw(st.sampled_from([JSON, 'text/html', None])),
        cookie=None, csrf=None, length='exact',
    )


@st.composite
def browser_posts(draw) -> Request:
    """What a browser (or anyone posing as one) sends: no Basic, this
    site's Origin or Referer, a session or none, forms of all kinds
    with or without the CSRF token, to objects and to the login views."""
    auth = draw(st.sampled_from(['session', 'session', 'none']))
    path = draw(st.one_of(
        st.sampled_from(FOLDERS + ITEMS).map(folder_path),
        st.sampled_from([b'/@@login', b'/@@logout', b'/doc/@@increment',
                         b'/box/@@login']),
    ))
    kind = draw(st.sampled_from(['form', 'multipart', 'json']))
    fields = draw(form_fields)
    if kind == 'form':
        body = draw(st.one_of(
            st.builds(form_body, st.just(fields), st.integers(0, 1)),
            st.sampled_from(RAW_FORMS),
        ))
        ctypes = [FORM] * 3 + FORM_CTYPES
    elif kind == 'multipart':
        body = multipart(fields, draw(st.none() | st.binary(max_size=20)),
                         draw(st.integers(0, 3)))
        ctypes = [MULTIPART] * 3 + MULTIPART_CTYPES
    else:
        body = draw(json_bodies(create_bodies()))
        ctypes = [JSON]
    own = draw(st.sampled_from(['origin', 'origin', 'referer']))
    return Request(
        method=draw(st.sampled_from(['POST'] * 4 + ['PATCH', 'DELETE'])),
        path=path, query=b'', body=body,
        ctype=draw(st.sampled_from(ctypes)), auth=auth, auth_value=None,
        remote=None,
        origin='http://127.0.0.1' if own == 'origin' else None,
        referer='http://127.0.0.1/' if own == 'referer' else None,
        host='127.0.0.1',
        accept=draw(st.sampled_from([JSON, 'text/html', None])),
        # X-CSRF-Token: then the CSRF check reads no form
        cookie=None, csrf=draw(st.sampled_from([None, None, TOKEN,
                                                'wrong'])),
        length='exact',
    )


#: Bugs of the app that this test found, each with its xfail test below:
#: (the start of the exception's message, what the request's
#: Content-Type has). Only these exceptions, from such requests, are
#: tolerated; remove an entry once its xfail test passes (XPASS).
#: Bugs found and not yet fixed, tolerated as exactly that exception:
#: name -> (the start of its message, a part of the request's
#: Content-Type). Found and fixed: a multipart body without a usable
#: boundary and a form in another charset made webob's request.POST
#: raise out of the app (the tests at the end).
KNOWN_BUGS: dict[str, tuple[str, str]] = {}


def known_bug(environ: dict, exc: Exception) -> str | None:
    ctype = environ.get('CONTENT_TYPE', '').lower()
    for bug, (message, kind) in KNOWN_BUGS.items():
        if str(exc).startswith(message) and kind in ctype:
            return bug
    return None


def host_is_bad(host: str | None) -> bool:
    return host in BAD_HOSTS


def failure(client: Client, req: Request, what: str) -> str:
    logs = '\n'.join(client.recorder.lines[-5:])
    return f'{what}\nrequest: {req!r}\napp log:\n{logs}'


# -- the properties -----------------------------------------------------------

COMMON = dict(
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
        HealthCheck.data_too_large, HealthCheck.filter_too_much,
    ],
)


@settings(max_examples=EXAMPLES, **COMMON)
@given(req=st.one_of(requests(), api_calls(), browser_posts()))
def test_random_requests_never_5xx_and_refusals_store_nothing(client, req):
    environ = client.environ(req)
    note(f'environ: {dict(environ, **{"wsgi.input": "..."})!r}')
    client.recorder.lines.clear()
    before = client.last()
    try:
        status, headers, data = client(environ)
    except Exception as exc:
        bug = known_bug(environ, exc)
        if bug is None:
            pytest.fail(failure(client, req, 'the app raised:\n'
                                + traceback.format_exc()))
        event(f'known bug: {bug}')  # see its xfail test below
        assert client.last() == before, 'a known bug stored something'
        return
    note(f'answer: {status} {data[:300]!r}')
    event(f'{req.method if req.method in METHODS else "other"} '
          f'{status}')
    assert status < 500, failure(client, req, f'{status}: {data[:500]!r}')
    if 400 <= status < 500:
        assert client.last() == before, failure(
            client, req, f'{status} but stored something: {data[:300]!r}'
        )
    if host_is_bad(req.host) and environ['PATH_INFO'] not in (
        client.app.open_paths
    ):
        assert status == 400, failure(client, req, f'bad Host: {status}')
    if req.method == 'DELETE' and 200 <= status < 300:
        seed(client)  # the next examples find the known objects again


login_names = st.one_of(st.sampled_from(['editor', 'viewer', 'nobody']),
                        text)
login_passwords = st.one_of(st.sampled_from([EDITOR[1], 'wrong', '']),
                            text)
came_froms = st.one_of(
    st.none(),
    st.sampled_from(['/', '/box', '//evil.example', '/\\evil.example',
                     'http://evil.example/', '/\t/evil.example',
                     '/%2F%2Fevil.example', '/\u202e', 'javascript:x',
                     '/box?x=1#y', ' /box', '/\r\nX: y']),
    text,
)


@settings(max_examples=LOGIN_EXAMPLES, **COMMON)
@given(credentials=often(st.just(EDITOR),
                         st.tuples(login_names, login_passwords), 2),
       came_from=came_froms,
       token=st.sampled_from(['form', 'form', 'wrong', 'none']),
       origin=st.sampled_from(['http://localhost', 'http://localhost',
                               'http://evil.example', None]))
def test_the_login_form(client, credentials, came_from, token, origin):
    """Random names, passwords and ``came_from`` posted to the login form:
    never a 5xx, nothing stored, and a login only with the right name,
    password, token and origin, back to a page of this site only."""
    name, password = credentials
    client.addresses += 1
    n = client.addresses
    address = f'10.200.{n >> 8 & 255}.{n & 255}'  # never throttled
    browser = TestApp(client.app, extra_environ={'REMOTE_ADDR': address})
    form = browser.get('/@@login').forms[0]
    fields = {'name': name, 'password': password}
    if came_from is not None:
        fields['came_from'] = came_from
    if token == 'form':
        fields['csrf_token'] = form['csrf_token'].value
    elif token == 'wrong':
        fields['csrf_token'] = 'wrong'
    before = client.last()
    response = browser.post(
        '/@@login', {k: utf8(v) for k, v in fields.items()},
        headers={'Origin': origin} if origin else {}, expect_errors=True,
    )
    note(f'answer: {response.status} {response.body[:300]!r}')
    event(f'login {response.status}')
    assert response.status_int < 500
    assert client.last() == before  # a login stores nothing
    good = (name, password) == EDITOR and token == 'form' and (
        origin == 'http://localhost'
    )
    assert (response.status_int == 303) == good, response.status
    if good:
        location = urlsplit(response.location)
        assert (location.scheme, location.netloc) == ('http', 'localhost')
        assert location.path.startswith('/')
        assert not location.path.startswith('//')


# -- the bugs it found (minimal reproducers) ---------------------------------


def anonymous_post(client: Client, path: bytes, ctype: str,
                   body: bytes = b'') -> int:
    """An anonymous POST with this site's Origin (what any client may
    send): its status."""
    environ = client.base('POST', path, body=body)
    environ.update(CONTENT_TYPE=ctype, HTTP_ORIGIN='http://127.0.0.1',
                   HTTP_ACCEPT=JSON)
    before = client.last()
    status = client(environ)[0]
    assert client.last() == before
    return status


@pytest.mark.parametrize('path', [b'/@@login', b'/@@logout'])
def test_bug_a_multipart_form_without_a_boundary_is_a_400(client, path):
    """Found: webob raised ValueError out of request.POST (a 500)."""
    assert anonymous_post(client, path, 'multipart/form-data') == 400


def test_bug_a_form_in_latin1_is_a_4xx(client):
    """Found: webob raised DeprecationWarning out of request.POST."""
    status = anonymous_post(client, b'/@@login',
                            FORM + '; charset=latin-1', b'name=a')
    assert 400 <= status < 500
