"""The ready app's security pieces, each on its own: Basic credentials,
the verified cache and the login throttle, origins, the Host and body
guard, where a login may send you back, users and the session."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import stat

import pytest
from pyramid.exceptions import ConfigurationError
from pyramid.request import Request
from pyramid.response import Response

from pyramid_zeostore.app import users as users_module
from pyramid_zeostore.app.csrf import origin_of, own_origin, request_origin
from pyramid_zeostore.app.guards import HEADERS, Guard, host_name, host_trusted
from pyramid_zeostore.app.login import safe_came_from
from pyramid_zeostore.app.security import (
    SESSION_COOKIE,
    SecurityPolicy,
    Throttle,
    VerifiedCache,
    basic_credentials,
)
from pyramid_zeostore.app.session import load_secret, session_factory
from pyramid_zeostore.app.settings import MASKED, AppSettings
from pyramid_zeostore.app.users import (
    MAX_NAME,
    MAX_PASSWORD,
    User,
    Users,
    check_hash,
    check_name,
    check_password,
)

SECRET = 'k' * 32
PASSWORD = 'correct horse battery staple'


def basic(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return 'Basic ' + base64.b64encode(raw).decode()


# -- HTTP Basic


@pytest.mark.parametrize('header, expected', [
    (None, None),
    ('', None),
    ('Bearer abc', None),
    ('Digest username="a"', None),
    (basic('alice:s3cret'), ('alice', 's3cret')),
    ('basic ' + base64.b64encode(b'a:b').decode(), ('a', 'b')),
    ('  Basic   ' + base64.b64encode(b'a:b').decode() + ' ', ('a', 'b')),
    (basic('a:b:c'), ('a', 'b:c')),
    (basic(':pw'), ('', 'pw')),
    (basic('name:'), ('name', '')),
    (basic('zo\xeb:p\xe4ss'), ('zo\xeb', 'p\xe4ss')),
    (basic('nocolon'), False),
    ('Basic', False),
    ('Basic not*base64', False),
    ('Basic YWI6Yw', False),  # bad padding
    ('Basic YWI6Yw==junk', False),  # strict: nothing after the padding
    ('Basic YWI6 Yw==', False),  # strict: only base64 characters
    ('Basic \xe9', False),  # not ASCII
    (basic(b'\xff\xfe:x'), False),  # not UTF-8
])
def test_basic_credentials(header, expected):
    headers = {} if header is None else {'Authorization': header}
    request = Request.blank('/', headers=headers)
    assert basic_credentials(request) == expected


# -- the cache of verified passwords


def test_verified_cache_hits_only_with_the_same_hash():
    cache = VerifiedCache()
    digest = cache.digest('alice', 'pw')
    assert not cache.known(digest, 'hash-1')
    cache.add(digest, 'hash-1')
    assert cache.known(digest, 'hash-1')
    assert not cache.known(digest, 'hash-2')  # the password changed
    assert not cache.known(cache.digest('alice', 'other'), 'hash-1')


def test_verified_cache_digests():
    cache, other = VerifiedCache(), VerifiedCache()
    digest = cache.digest('alice', 'pw')
    assert digest == cache.digest('alice', 'pw')
    assert len(digest) == 32 and b'pw' not in digest
    assert digest != other.digest('alice', 'pw')  # a random key each
    assert cache.digest('a:b', 'c') != cache.digest('a', 'b:c')
    assert cache.digest('a', 'bc') != cache.digest('ab', 'c')
    cache.digest('x', '\udc80')  # lone surrogates do not raise


def test_verified_cache_forgets_the_least_recently_used():
    cache = VerifiedCache(size=2)
    a, b, c = (cache.digest(n, 'pw') for n in 'abc')
    cache.add(a, 'ha')
    cache.add(b, 'hb')
    assert cache.known(a, 'ha')  # a is now the most recently used
    cache.add(c, 'hc')
    assert cache.known(a, 'ha')
    assert not cache.known(b, 'hb')
    assert cache.known(c, 'hc')
    assert len(cache._data) == 2


def test_verified_cache_add_replaces_the_hash():
    cache = VerifiedCache(size=2)
    digest = cache.digest('a', 'pw')
    cache.add(digest, 'old')
    cache.add(digest, 'new')
    assert cache.known(digest, 'new') and not cache.known(digest, 'old')
    assert len(cache._data) == 1


# -- the login throttle


def test_throttle_waits_once_the_limit_is_reached():
    throttle = Throttle(window=60)
    assert throttle.wait('k', 3, now=0) == 0
    throttle.failed('k', now=0)
    throttle.failed('k', now=1)
    assert throttle.wait('k', 3, now=2) == 0
    throttle.failed('k', now=2)
    # the oldest of the last three failures leaves the window at 60
    assert throttle.wait('k', 3, now=2) == pytest.approx(58)
    assert throttle.wait('k', 3, now=59.5) == pytest.approx(0.5)
    assert throttle.wait('k', 4, now=2) == 0
    assert throttle.wait('other', 3, now=2) == 0


def test_throttle_window_slides():
    throttle = Throttle(window=10)
    for now in (0, 1, 2):
        throttle.failed('k', now=now)
    assert throttle.wait('k', 3, now=9) == pytest.approx(1)
    assert throttle.wait('k', 3, now=10) == 0  # the failure at 0 expired
    assert throttle.wait('k', 2, now=10) == pytest.approx(1)
    assert throttle.wait('k', 1, now=12.5) == 0


def test_throttle_wait_is_never_zero_while_refused():
    throttle = Throttle(window=1)
    throttle.failed('k', now=5)
    assert throttle.wait('k', 1, now=5.9999999) >= 0.001


def test_throttle_forget():
    throttle = Throttle(window=60)
    throttle.failed(('alice', '10.0.0.1'), now=0)
    throttle.forget(('alice', '10.0.0.1'))
    throttle.forget('never seen')
    assert throttle.wait(('alice', '10.0.0.1'), 1, now=0) == 0


def test_throttle_memory_is_bounded():
    throttle = Throttle(window=60, size=2)
    throttle.failed('a', now=0)
    throttle.failed('b', now=0)
    throttle.failed('a', now=1)  # a is now the newest
    throttle.failed('c', now=1)
    assert throttle.wait('b', 1, now=2) == 0  # forgotten
    assert throttle.wait('a', 2, now=2) > 0
    assert throttle.wait('c', 1, now=2) > 0
    for now in range(100):
        throttle.failed('a', now=1 + now / 1000)
    assert len(throttle._failures['a']) == 64


# -- the session's fingerprint of a hash


def test_an_identity_the_database_cannot_give_is_asked_for_once(
    monkeypatch,
):
    """authenticated_userid (the transaction's user) cannot learn who it
    is: None, and the error is kept for the view's own check, which
    raises it (a 503 there) without asking the database again."""
    from pyramid import testing

    policy = SecurityPolicy(AppSettings(), SECRET)
    asked = []

    def down(request, name, password):
        asked.append(name)
        raise RuntimeError('the database is down')

    monkeypatch.setattr(policy, 'check_password', down)
    config = testing.setUp()
    try:
        config.set_security_policy(policy)
        request = Request.blank(
            '/', headers={'Authorization': basic('alice:pw')}
        )
        request.registry = config.registry
        assert policy.authenticated_userid(request) is None
        with pytest.raises(RuntimeError, match='the database is down'):
            assert request.identity is None  # raises first
        assert asked == ['alice']
    finally:
        testing.tearDown()


def test_fingerprint():
    policy = SecurityPolicy(AppSettings(), SECRET)
    fingerprint = policy.fingerprint('$argon2id$one')
    assert fingerprint == hmac.new(
        SECRET.encode(), b'$argon2id$one', hashlib.sha256,
    ).hexdigest()[:32]
    assert fingerprint == policy.fingerprint('$argon2id$one')
    assert fingerprint != policy.fingerprint('$argon2id$two')
    other = SecurityPolicy(AppSettings(), 'o' * 32)
    assert fingerprint != other.fingerprint('$argon2id$one')
    assert len(SecurityPolicy(AppSettings(), None).fingerprint('h')) == 32


# -- origins


@pytest.mark.parametrize('url, origin', [
    ('https://example.com', 'https://example.com'),
    ('https://example.com:443/x', 'https://example.com'),
    ('http://example.com:80', 'http://example.com'),
    ('https://example.com:80', 'https://example.com:80'),
    ('http://example.com:8080/p?q=1#f', 'http://example.com:8080'),
    ('HTTPS://EXAMPLE.COM', 'https://example.com'),
    ('http://[::1]:6543/', 'http://[::1]:6543'),
    (' https://a.example ', 'https://a.example'),
    ('https://user:pw@a.example/', 'https://a.example'),
    ('ftp://example.com', None),
    ('javascript:alert(1)', None),
    ('https://', None),
    ('https://example.com:bad', None),
    ('https://example.com:99999', None),
    ('example.com', None),
    ('', None),
])
def test_origin_of(url, origin):
    assert origin_of(url) == origin


@pytest.mark.parametrize('headers, origin', [
    ({}, None),
    ({'Origin': 'https://a.example'}, 'https://a.example'),
    ({'Origin': 'https://a.example:443'}, 'https://a.example'),
    ({'Origin': 'null'}, 'null'),
    ({'Origin': 'garbage'}, 'null'),
    ({'Origin': ''}, 'null'),
    ({'Origin': 'https://a.example https://b.example'}, 'https://b.example'),
    ({'Origin': 'https://a.example', 'Referer': 'https://b.example/'},
     'https://a.example'),
    ({'Referer': 'https://b.example/page?x=1'}, 'https://b.example'),
    ({'Referer': 'about:blank'}, 'null'),
    ({'Referer': ''}, None),
])
def test_request_origin(headers, origin):
    assert request_origin(Request.blank('/', headers=headers)) == origin


@pytest.mark.parametrize('url, origin', [
    ('https://example.com/x', 'https://example.com'),
    ('https://example.com:443/x', 'https://example.com'),
    ('http://localhost:6543/', 'http://localhost:6543'),
    ('http://[::1]:6543/', 'http://[::1]:6543'),
])
def test_own_origin(url, origin):
    assert own_origin(Request.blank(url)) == origin


# -- the Host header and the body's size


@pytest.mark.parametrize('host, name', [
    ('localhost', 'localhost'),
    ('Example.COM:8080', 'example.com'),
    ('[::1]', '::1'),
    ('[::1]:6543', '::1'),
    ('a/b', None),
    ('a?b', None),
    ('user@a', None),
    ('a:x', None),
    ('a:99999', None),
    ('', None),
])
def test_host_name(host, name):
    assert host_name(host) == name


@pytest.mark.parametrize('host, trusted, expected', [
    ('localhost', ('localhost',), True),
    ('localhost:6543', ('localhost',), True),
    ('LOCALHOST', ('localhost',), True),
    ('[::1]:6543', ('::1',), True),
    ('127.0.0.1:80', ('localhost', '127.0.0.1'), True),
    ('a.example.com', ('.example.com',), True),
    ('a.b.example.com', ('.example.com',), True),
    ('example.com', ('.example.com',), True),
    ('badexample.com', ('.example.com',), False),
    ('example.com.evil', ('.example.com',), False),
    ('a.example.com', ('example.com',), False),
    ('anything.example', ('*',), True),
    ('evil.example', ('localhost',), False),
    ('evil.example', (), False),
    ('localhost/x', ('localhost',), False),
    ('x/y', ('*',), False),
    ('user@localhost', ('localhost',), False),
    ('localhost:abc', ('localhost',), False),
    ('', ('*',), False),
])
def test_host_trusted(host, trusted, expected):
    assert host_trusted(host, trusted) is expected


class Unreadable:
    """A ``wsgi.input`` that must not be read."""

    def read(self, *args):
        raise AssertionError('the body was read')


def environ(**extra):
    env = {
        'REQUEST_METHOD': 'POST',
        'SCRIPT_NAME': '',
        'PATH_INFO': '/',
        'QUERY_STRING': '',
        'SERVER_NAME': 'localhost',
        'SERVER_PORT': '80',
        'HTTP_HOST': 'localhost',
        'wsgi.url_scheme': 'http',
        'wsgi.input': io.BytesIO(),
    }
    env.update(extra)
    return env


def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']


@pytest.fixture
def guard():
    settings = AppSettings(max_body=10, max_value=5)
    return Guard(app, settings, open_paths=['/@@health', None])


def test_a_trusted_host_and_a_small_body_pass(guard):
    env = environ(CONTENT_LENGTH='10', **{'wsgi.input': Unreadable()})
    assert guard.refusal(env) is None
    assert env['CONTENT_LENGTH'] == '10'


def test_an_unknown_host_is_refused(guard):
    response = guard.refusal(environ(HTTP_HOST='evil.example'))
    assert response.status_int == 400
    assert 'evil.example' in response.detail
    assert 'zeostore.trusted_hosts' in response.detail


def test_an_unknown_host_is_told_in_json_to_a_json_client(guard):
    response = guard.refusal(
        environ(HTTP_HOST='evil.example', HTTP_ACCEPT='application/json')
    )
    assert response.status_int == 400
    assert 'evil.example' in response.json_body['message']


def test_open_paths_answer_any_host(guard):
    env = environ(HTTP_HOST='evil.example', PATH_INFO='/@@health')
    assert guard.refusal(env) is None
    response = guard.refusal(
        environ(HTTP_HOST='evil.example', PATH_INFO='/@@health/x')
    )
    assert response.status_int == 400


def test_a_large_content_length_is_refused_before_reading(guard):
    env = environ(CONTENT_LENGTH='11', **{'wsgi.input': Unreadable()})
    response = guard.refusal(env)
    assert response.status_int == 413
    assert '10 bytes' in response.detail
    assert 'zeostore.max_body' in response.detail


def test_an_open_path_still_has_a_body_limit(guard):
    env = environ(
        HTTP_HOST='evil.example', PATH_INFO='/@@health',
        CONTENT_LENGTH='1000', **{'wsgi.input': Unreadable()},
    )
    assert guard.refusal(env).status_int == 413


@pytest.mark.parametrize('length', ['ten', '1e3', '0x10'])
def test_a_bad_content_length_is_refused(guard, length):
    env = environ(CONTENT_LENGTH=length, **{'wsgi.input': Unreadable()})
    response = guard.refusal(env)
    assert response.status_int == 400
    assert 'Content-Length' in response.detail


def test_a_large_chunked_body_is_refused(guard):
    env = environ(
        HTTP_TRANSFER_ENCODING='chunked',
        **{'wsgi.input': io.BytesIO(b'x' * 11)},
    )
    assert guard.refusal(env).status_int == 413


@pytest.mark.parametrize('body', [b'', b'x', b'x' * 10])
def test_a_small_chunked_body_is_read_into_memory(guard, body):
    env = environ(
        HTTP_TRANSFER_ENCODING='Chunked',
        **{'wsgi.input': io.BytesIO(body)},
    )
    assert guard.refusal(env) is None
    assert isinstance(env['wsgi.input'], io.BytesIO)
    assert env['wsgi.input'].read() == body
    assert env['CONTENT_LENGTH'] == str(len(body))
    assert 'HTTP_TRANSFER_ENCODING' not in env


def test_a_terminated_input_is_read_like_a_chunked_body(guard):
    env = environ(**{
        'wsgi.input_terminated': True, 'wsgi.input': io.BytesIO(b'abc'),
    })
    assert guard.refusal(env) is None
    assert env['CONTENT_LENGTH'] == '3'
    big = environ(**{
        'wsgi.input_terminated': True, 'wsgi.input': io.BytesIO(b'x' * 11),
    })
    assert guard.refusal(big).status_int == 413


def test_no_length_and_no_chunks_reads_nothing(guard):
    env = environ(REQUEST_METHOD='GET', **{'wsgi.input': Unreadable()})
    assert guard.refusal(env) is None
    assert 'CONTENT_LENGTH' not in env


def call(wsgi, env):
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen['status'], seen['headers'] = status, headers

    body = b''.join(wsgi(env, start_response))
    return seen['status'], seen['headers'], body


def test_every_response_has_the_security_headers(guard):
    status, headers, body = call(guard, environ(REQUEST_METHOD='GET'))
    assert (status, body) == ('200 OK', b'ok')
    for header in HEADERS:
        assert headers.count(header) == 1
    assert ('Content-Type', 'text/plain') in headers


def test_a_refusal_has_the_security_headers_too(guard):
    status, headers, _ = call(guard, environ(HTTP_HOST='evil.example'))
    assert status.startswith('400 ')
    for header in HEADERS:
        assert header in headers


def test_a_header_the_app_set_is_kept():
    def framed(environ, start_response):
        start_response('200 OK', [
            ('X-Frame-Options', 'SAMEORIGIN'),
            ('content-security-policy', "default-src 'self'"),
        ])
        return [b'']

    guard = Guard(framed, AppSettings())
    _, headers, _ = call(guard, environ(REQUEST_METHOD='GET'))
    names = [name.lower() for name, _ in headers]
    assert names.count('x-frame-options') == 1
    assert names.count('content-security-policy') == 1
    assert ('X-Frame-Options', 'SAMEORIGIN') in headers
    assert ('content-security-policy', "default-src 'self'") in headers
    assert ('X-Content-Type-Options', 'nosniff') in headers
    assert ('Referrer-Policy', 'same-origin') in headers


# -- where a login sends you back


@pytest.mark.parametrize('value, expected', [
    ('/', '/'),
    ('/a/b?x=1', '/a/b?x=1'),
    ('/a#top', '/a#top'),
    ('//evil.example', '/'),
    ('//evil.example/path', '/'),
    ('http://evil', '/'),
    ('https://evil.example/', '/'),
    ('evil', '/'),
    ('', '/'),
    ('\\\\evil', '/'),
    ('/\\evil', '/'),
    ('/a\\b', '/'),
    ('/\tevil', '/'),
    ('/x\r\nSet-Cookie: a=b', '/'),
    ('/\x00', '/'),
    (None, '/'),
    (['/a'], '/'),
    (b'/a', '/'),
])
def test_safe_came_from(value, expected):
    assert safe_came_from(None, value) == expected


# -- users


@pytest.fixture(scope='module')
def users():
    """One user, hashed once for the whole file (argon2 is slow)."""
    users = Users()
    users.add('alice', PASSWORD, 'editor')
    return users


@pytest.fixture
def fast_hash(monkeypatch):
    """Users.add without argon2: the hashes made, in order."""
    made = []

    def fake(password):
        made.append(password)
        return f'fake${len(made)}'

    monkeypatch.setattr(users_module, 'hash_password', fake)
    return made


@pytest.mark.parametrize('name, expected', [
    ('alice', 'alice'),
    ('Zo\xeb Smith', 'Zo\xeb Smith'),
    ('Zoe\u0301', 'Zo\xe9'),  # NFC
    ('a' * MAX_NAME, 'a' * MAX_NAME),
    ('e\u0301' * MAX_NAME, '\xe9' * MAX_NAME),  # counted after NFC
])
def test_check_name_accepts(name, expected):
    assert check_name(name) == expected


@pytest.mark.parametrize('name', [
    '', None, 42, b'alice',
    'a:b', ':', ' alice', 'alice ', '\talice',
    'a\x00b', 'a\nb', 'a\u200bb', 'a\x7fb',
    'a' * (MAX_NAME + 1),
])
def test_check_name_refuses(name):
    with pytest.raises(ValueError):
        check_name(name)


def test_check_password():
    check_password('x')
    check_password('x' * MAX_PASSWORD)
    for bad in ('', None, 1234, 'x' * (MAX_PASSWORD + 1)):
        with pytest.raises(ValueError):
            check_password(bad)


def test_user_permissions():
    assert User('v', 'h', 'viewer').permissions == {'view'}
    assert User('e', 'h', 'editor').permissions == {'view', 'edit'}
    assert User('m', 'h', 'manager').permissions == {
        'view', 'edit', 'manage',
    }
    assert User('x', 'h', 'stranger').permissions == frozenset()


def test_a_stored_user(users):
    alice = users.get('alice')
    assert (alice.name, alice.role) == ('alice', 'editor')
    assert alice.password_hash.startswith('$argon2id$')
    assert PASSWORD not in alice.password_hash
    assert users.get('bob') is None
    assert len(users) == 1 and list(users) == [alice]


def test_verify(users):
    assert users.verify('alice', PASSWORD) is users.get('alice')
    assert users.verify('alice', PASSWORD + 'x') is None
    assert users.verify('bob', PASSWORD) is None


def test_verify_refuses_what_is_not_text_without_hashing(users):
    assert users.verify('alice', None) is None
    assert users.verify('alice', 'x' * (MAX_PASSWORD + 1)) is None


def test_check_hash(users):
    stored = users.get('alice').password_hash
    assert check_hash(stored, PASSWORD) is True
    assert check_hash(stored, None) is False
    assert check_hash(stored, PASSWORD.encode()) is False
    assert check_hash(stored, 'x' * (MAX_PASSWORD + 1)) is False
    assert check_hash('not a hash', PASSWORD) is False


def test_add_replace_and_remove(fast_hash):
    users = Users()
    bob = users.add('bob', 'pw1')
    assert bob.role == 'manager'  # the default role
    assert bob.password_hash == 'fake$1' and fast_hash == ['pw1']
    again = users.add('bob', 'pw2', 'viewer')
    assert again is bob and len(users) == 1
    assert (bob.password_hash, bob.role) == ('fake$2', 'viewer')
    users.add('carol', 'pw3', 'editor')
    assert sorted(u.name for u in users) == ['bob', 'carol']
    users.remove('bob')
    assert users.get('bob') is None and len(users) == 1
    with pytest.raises(KeyError):
        users.remove('bob')


def test_add_stores_the_nfc_name(fast_hash):
    users = Users()
    users.add('Zoe\u0301', 'pw')
    assert users.get('Zo\xe9').name == 'Zo\xe9'
    assert users.get('Zoe\u0301') is None


@pytest.mark.parametrize('name, password, role', [
    ('bob', 'pw', 'admin'),
    ('bob', 'pw', 'Manager'),
    ('b:ob', 'pw', 'viewer'),
    ('bob', '', 'viewer'),
    ('bob', 'x' * (MAX_PASSWORD + 1), 'viewer'),
])
def test_add_refuses_before_hashing(fast_hash, name, password, role):
    users = Users()
    with pytest.raises(ValueError):
        users.add(name, password, role)
    assert len(users) == 0 and fast_hash == []


def test_an_unknown_role_is_named(fast_hash):
    with pytest.raises(ValueError, match="'admin'"):
        Users().add('bob', 'pw', 'admin')


# -- the session


def test_no_secret_configured():
    assert load_secret(AppSettings()) is None


def test_the_secret_setting_wins(tmp_path):
    path = tmp_path / 'secret'
    settings = AppSettings(secret=SECRET, secret_file=str(path))
    assert load_secret(settings) == SECRET
    assert not path.exists()


def test_a_secret_file_is_made_then_read_back(tmp_path):
    path = tmp_path / 'new' / 'var' / 'secret'
    settings = AppSettings(secret_file=str(path))
    secret = load_secret(settings)
    assert len(secret) >= 32 and secret == secret.strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert path.read_text().strip() == secret
    assert os.listdir(path.parent) == ['secret']  # no temporary file left
    assert load_secret(settings) == secret
    assert load_secret(AppSettings(secret_file=str(path))) == secret


def test_a_secret_file_made_meanwhile_by_another_process_wins(
    tmp_path, monkeypatch
):
    """Two processes starting at once: the one whose link comes second
    reads the first one's secret, and leaves no temporary file."""
    path = tmp_path / 'secret'
    theirs = 't' * 64
    real_link = os.link

    def link(src, dst):
        path.write_text(theirs + '\n')  # the other process got there
        real_link(src, dst)  # FileExistsError

    monkeypatch.setattr(os, 'link', link)
    assert load_secret(AppSettings(secret_file=str(path))) == theirs
    assert os.listdir(tmp_path) == ['secret']


def test_secret_files_are_random(tmp_path):
    one = load_secret(AppSettings(secret_file=str(tmp_path / 'one')))
    two = load_secret(AppSettings(secret_file=str(tmp_path / 'two')))
    assert one != two


def test_an_existing_secret_file_is_read_stripped(tmp_path):
    path = tmp_path / 'secret'
    path.write_text(f'  {"s" * 40}\n\n')
    assert load_secret(AppSettings(secret_file=str(path))) == 's' * 40


def test_a_short_secret_file_is_refused_and_not_shown(tmp_path):
    path = tmp_path / 'secret'
    path.write_text('Qv8wXr\n')
    with pytest.raises(ConfigurationError) as info:
        load_secret(AppSettings(secret_file=str(path)))
    e = info.value
    assert e.key == 'zeostore.secret_file'
    assert e.value == MASKED
    assert 'Qv8wXr' not in str(e)
    assert 'holds 6' in str(e)


def test_an_unreadable_secret_file_is_refused(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        load_secret(AppSettings(secret_file=str(tmp_path)))  # a directory
    assert info.value.key == 'zeostore.secret_file'
    assert info.value.value == str(tmp_path)


def test_a_secret_file_under_a_file_is_refused(tmp_path):
    (tmp_path / 'file').write_text('x')
    path = tmp_path / 'file' / 'secret'
    with pytest.raises(ConfigurationError) as info:
        load_secret(AppSettings(secret_file=str(path)))
    assert info.value.key == 'zeostore.secret_file'


def set_cookie(factory, url):
    """The Set-Cookie header of a response to a request whose session
    was changed."""
    request = Request.blank(url)
    factory(request)['x'] = 1
    response = Response()
    request._process_response_callbacks(response)
    [header] = response.headers.getall('Set-Cookie')
    return header


def cookie_attributes(header):
    return {part.strip().lower() for part in header.split(';')[1:]}


@pytest.mark.parametrize('url, secure_cookies, secure', [
    ('https://example.com/', False, True),
    ('http://example.com/', False, False),
    ('http://example.com/', True, True),
    ('https://example.com/', True, True),
])
def test_session_cookie_attributes(url, secure_cookies, secure):
    settings = AppSettings(secure_cookies=secure_cookies)
    header = set_cookie(session_factory(settings, SECRET), url)
    assert header.startswith(f'{SESSION_COOKIE}=')
    attributes = cookie_attributes(header)
    assert 'httponly' in attributes
    assert 'samesite=lax' in attributes
    assert ('secure' in attributes) is secure


def test_session_cookie_is_signed_with_the_secret():
    factory = session_factory(AppSettings(), SECRET)
    header = set_cookie(factory, 'http://example.com/')
    cookie = header.split(';')[0]
    back = Request.blank('/', headers={'Cookie': cookie})
    assert factory(back)['x'] == 1
    other = session_factory(AppSettings(), 'o' * 32)
    stranger = Request.blank('/', headers={'Cookie': cookie})
    assert 'x' not in other(stranger)


@pytest.mark.parametrize('host', ['localhost#x', 'a b', 'localhost x'])
def test_a_host_with_a_fragment_or_space_is_no_host(host):
    assert host_name(host) is None
    assert not host_trusted(host, ('localhost', 'a'))
