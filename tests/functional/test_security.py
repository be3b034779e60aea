"""The ready app in front of the public, over a real ZEO server: who may
write, the login flow, cross-site refusals, the guard's limits.

Each test starts from an empty database of one module-wide ``runzeo``
(no users, no app root) and talks to ``main()``'s WSGI app with WebTest.
Every refusal is checked to have stored nothing: the storage's last
transaction id is the one before it.
"""

from __future__ import annotations

import base64
import io
import logging
import os

import pytest
from pyramid.exceptions import ConfigurationError
from webtest import TestApp

from pyramid_zeostore import get_databases
from pyramid_zeostore.app import main
from pyramid_zeostore.app import security as security_module
from pyramid_zeostore.app import users as users_module
from pyramid_zeostore.app.users import USERS_KEY, add_user
from pyramid_zeostore.databases import close_all
from pyramid_zeostore.root import APP_ROOT, bootstrap
from pyramid_zeostore.testing import running_zeo_server

SECRET = 's' * 40
OWN = 'http://localhost'
EVIL = 'http://evil.example'
SIBLING = 'http://sibling.localhost'


def basic(name='admin', password='right-password'):
    token = base64.b64encode(f'{name}:{password}'.encode()).decode()
    return {'Authorization': f'Basic {token}'}


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    with running_zeo_server(str(tmp_path_factory.mktemp('zeo'))) as zeo:
        yield zeo


class Site:
    """The ready app over the module's server, and its database."""

    def __init__(self, server, tmp_path, **settings):
        self.settings = {
            'zodb_uri': server.uri(),
            'zeostore.lock_file': str(tmp_path / 'lock'),
            'zeostore.secret': SECRET,
            **settings,
        }
        self.wsgi = main({'__file__': '/srv/site.ini'}, **self.settings)
        self.db = get_databases(self.wsgi.registry).get('')
        self.app = TestApp(self.wsgi)

    def browser(self, **extra_environ):
        return TestApp(self.wsgi, extra_environ=extra_environ)

    def add_user(self, name='admin', password='right-password',
                 role='manager'):
        add_user(self.db, name, password, role)

    def last(self):
        self.db.storage.sync()
        return self.db.lastTransaction()

    def users_of_last(self, n):
        """The users of the last ``n`` transactions, newest first."""
        self.db.storage.sync()
        return [t['user_name'] for t in self.db.undoLog(0, n)]

    def refused(self, call, status, *args, **kw):
        """``call(*args, **kw)`` answers ``status`` and stores nothing."""
        before = self.last()
        response = call(*args, status=status, **kw)
        assert self.last() == before, 'a refused request stored something'
        return response

    def login(self, browser, name='admin', password='right-password',
              origin=OWN):
        form = browser.get('/@@login').forms[0]
        form['name'], form['password'] = name, password
        return form.submit(headers={'Origin': origin}, status='*')


def _wipe(zodb_root):
    for key in (USERS_KEY, APP_ROOT):
        zodb_root.pop(key, None)


@pytest.fixture
def site(server, tmp_path):
    """A site factory; the database is emptied first."""
    made = []

    def make(**settings):
        made.append(Site(server, tmp_path, **settings))
        return made[-1]

    first = make()
    bootstrap(first.db, _wipe)
    close_all()
    made.clear()
    yield make
    close_all()


# -- who may write ------------------------------------------------------------


def test_without_users_the_app_is_read_only(site, caplog):
    caplog.set_level(logging.WARNING, 'pyramid_zeostore.app')
    s = site()
    assert 'pzeo adduser /srv/site.ini NAME' in caplog.text  # at startup
    assert s.app.get('/').status_int == 200
    r = s.refused(s.app.post_json, 403, '/', {'name': 'x'})
    assert 'read-only' in r.json['message']
    assert 'pzeo adduser /srv/site.ini NAME' in r.json['message']
    # not even with credentials: there is nobody they could be
    s.refused(s.app.post_json, 401, '/', {'name': 'x'}, headers=basic())


def test_anonymous_writes_are_refused_with_how_to_log_in(site):
    s = site()
    s.add_user()
    for call, args in [
        (s.app.post_json, ('/', {'name': 'x'})),
        (s.app.patch_json, ('/', {'a': 1})),
        (s.app.post_json, ('/@@increment', {})),
    ]:
        r = s.refused(call, 401, *args)
        assert r.headers['WWW-Authenticate'].startswith('Basic realm=')
        assert 'Log in' in r.json['message']
    r = s.refused(s.app.delete, 403, '/', headers={'Origin': OWN})
    assert 'Log in' in r.text


def test_basic_credentials_write_and_wrong_ones_are_refused(site, caplog):
    s = site()
    s.add_user()
    r = s.app.post_json('/', {'name': 'doc', 'attributes': {'n': 1}},
                        headers=basic())
    assert r.status_int == 201
    s.app.patch_json('/doc', {'n': 2}, headers=basic())
    assert s.app.post_json('/doc/@@increment', {'attribute': 'n'},
                           headers=basic()).json['value'] == 3
    caplog.set_level(logging.WARNING, security_module.__name__)
    r = s.refused(s.app.post_json, 401, '/', {'name': 'y'},
                  headers=basic(password='guess-one'))
    assert r.json['message'] == 'Wrong name or password.'
    assert "failed login for user 'admin'" in caplog.text
    assert 'guess-one' not in caplog.text  # never the password
    s.refused(s.app.post_json, 401, '/', {'name': 'y'},
              headers={'Authorization': 'Basic !!!not-base64'})
    s.app.delete('/doc', headers=basic())
    assert s.app.get('/', headers={'Accept': 'application/json'}
                     ).json['length'] == 0
    # Each write's transaction names its user (create, patch, increment,
    # delete), as the undo log and the history pages show it.
    assert s.users_of_last(4) == ['admin'] * 4


def test_roles_viewer_reads_editor_writes(site):
    s = site(**{'zeostore.anonymous': 'none'})
    s.add_user('viewer', 'viewer-password', 'viewer')
    s.add_user('editor', 'editor-password', 'editor')
    anonymous = s.refused(s.app.get, 401, '/?format=json')
    assert 'Log in' in anonymous.json['message']
    page = s.refused(s.app.get, 403, '/', headers={'Accept': 'text/html'})
    assert '/@@login' in page.text
    s.app.get('/', headers=basic('viewer', 'viewer-password'))
    r = s.refused(s.app.post_json, 403, '/', {'name': 'x'},
                  headers=basic('viewer', 'viewer-password'))
    assert 'viewer (viewer) may not edit' in r.json['message']
    s.app.post_json('/', {'name': 'x'},
                    headers=basic('editor', 'editor-password'))


def test_failed_logins_are_throttled_per_name_and_address(site):
    s = site(**{'zeostore.login_attempts': '3'})
    s.add_user()
    here = {'REMOTE_ADDR': '192.0.2.1'}
    for _ in range(3):
        s.refused(s.app.post_json, 401, '/', {'name': 'x'},
                  headers=basic(password='wrong'), extra_environ=here)
    # now even the right password waits, from that address
    r = s.refused(s.app.post_json, 429, '/', {'name': 'x'},
                  headers=basic(), extra_environ=here)
    assert 0 < int(r.headers['Retry-After']) <= 60
    assert 'Too many failed logins' in r.json['message']
    # another address is not locked out
    s.app.post_json('/', {'name': 'x'}, headers=basic(),
                    extra_environ={'REMOTE_ADDR': '192.0.2.2'})


def test_verified_credentials_are_remembered_until_the_hash_changes(
    site, monkeypatch
):
    s = site()
    s.add_user()
    checks = []
    real = users_module.check_hash
    monkeypatch.setattr(
        users_module, 'check_hash',
        lambda h, p: checks.append(p) or real(h, p),
    )
    for n in range(5):
        s.app.post_json('/', {'name': f'd{n}'}, headers=basic())
    assert checks == ['right-password']  # argon2 ran once for five
    s.add_user(password='new-password')  # changes the stored hash
    s.refused(s.app.post_json, 401, '/', {'name': 'z'}, headers=basic())
    s.app.post_json('/', {'name': 'z'},
                    headers=basic(password='new-password'))


# -- browsers: the login form and the session ------------------------------


def test_login_write_logout(site):
    s = site()
    s.add_user()
    b = s.browser()
    page = b.get('/')
    assert 'Log in' in page.text and '<form' not in page.text
    r = s.login(b, password='wrong')
    assert r.status_int == 403 and 'Wrong name or password' in r.text
    r = s.login(b)
    assert r.status_int == 303 and r.location == 'http://localhost/'
    cookie = [c for c in r.headers.getall('Set-Cookie')
              if c.startswith('zeostore_session=')][0]
    assert 'HttpOnly' in cookie and 'SameSite=Lax' in cookie
    assert 'secure' not in cookie.lower()  # plain http
    page = b.get('/')
    assert 'admin (manager)' in page.text
    form = page.forms[1]
    form['name'] = 'from-the-form'
    assert form.submit(headers={'Origin': OWN}).status_int == 303
    assert 'from-the-form' in b.get('/').text
    assert s.users_of_last(1) == ['admin']  # logged in by the form
    page.forms[0].submit(headers={'Origin': OWN})  # log out
    assert 'Log in' in b.get('/').text
    s.refused(b.post, 403, '/', {'name': 'after', 'csrf_token': 'x'},
              headers={'Origin': OWN})


def test_session_cookie_is_secure_over_https_or_when_configured(site):
    s = site()
    s.add_user()
    b = s.browser(**{'wsgi.url_scheme': 'https', 'HTTP_HOST': 'localhost'})
    r = s.login(b, origin='https://localhost')
    assert r.status_int == 303, r.text
    assert any('zeostore_session=' in c and '; secure' in c.lower()
               for c in r.headers.getall('Set-Cookie'))
    s2 = site(**{'zeostore.secure_cookies': 'true'})
    r = s2.login(s2.browser())
    assert any('zeostore_session=' in c and '; secure' in c.lower()
               for c in r.headers.getall('Set-Cookie'))


def test_login_goes_back_only_to_this_site(site):
    s = site()
    s.add_user()
    b = s.browser()
    page = b.get('/@@login?came_from=//evil.example/x')
    # No "Log in" link on the login form itself (it came back to it).
    assert '@@login?came_from' not in page.text
    assert '@@login?came_from=/"' in b.get('/').text
    form = page.forms[0]
    form['name'], form['password'] = 'admin', 'right-password'
    r = form.submit(headers={'Origin': OWN})
    assert r.location == 'http://localhost/'


def test_a_password_change_or_removal_ends_sessions(site):
    s = site()
    s.add_user()
    b = s.browser()
    s.login(b)
    assert 'admin (manager)' in b.get('/').text
    s.add_user(password='changed-password')
    assert 'Log in' in b.get('/').text


def test_users_but_no_secret_fails_at_startup(site, server, tmp_path):
    s = site()
    s.add_user()
    close_all()
    with pytest.raises(ConfigurationError) as e:
        main({}, **{'zodb_uri': server.uri(),
                    'zeostore.lock_file': str(tmp_path / 'lock')})
    assert e.value.key == 'zeostore.secret'
    # without the startup check, the form says sign-in by form is off
    app = TestApp(main({}, **{
        'zodb_uri': server.uri(), 'zeostore.check_on_startup': 'false',
        'zeostore.lock_file': str(tmp_path / 'lock'),
    }))
    assert 'zeostore.secret' in app.get('/@@login').text
    app.post_json('/', {'name': 'basic-still-works'}, headers=basic())


def test_secret_file_is_made_once_for_development(site, tmp_path):
    path = tmp_path / 'var' / 'secret'
    s = site(**{'zeostore.secret': '', 'zeostore.secret_file': str(path)})
    assert oct(path.stat().st_mode & 0o777) == '0o600'
    first = path.read_text()
    s.add_user()
    b = s.browser()
    s.login(b)
    again = site(**{'zeostore.secret': '', 'zeostore.secret_file': str(path)})
    assert path.read_text() == first
    # the second process signs sessions the same way
    b.app = again.wsgi
    assert 'admin (manager)' in b.get('/').text


# -- no write from another site -----------------------------------------------


@pytest.fixture
def logged_in(site):
    s = site(**{'zeostore.trusted_origins': 'https://admin.example.com'})
    s.add_user()
    b = s.browser()
    s.login(b)
    token = b.get('/').forms[1]['csrf_token'].value
    return s, b, token


@pytest.mark.parametrize('headers', [
    {'Origin': EVIL},
    {'Origin': SIBLING},
    {'Origin': 'null'},
    {'Origin': 'http://localhost:8080'},  # another port: another origin
    {'Referer': EVIL + '/page'},
    {},  # neither Origin nor Referer
], ids=['foreign', 'sibling', 'null', 'port', 'referer', 'no-origin'])
def test_a_form_post_from_elsewhere_with_valid_cookies_is_refused(
    logged_in, headers
):
    s, b, token = logged_in
    r = s.refused(b.post, 403, '/', {'name': 'x', 'csrf_token': token},
                  headers=headers)
    assert 'Refused' in r.text


def test_same_origin_and_trusted_origins_may_post(logged_in):
    s, b, token = logged_in
    b.post('/', {'name': 'own', 'csrf_token': token},
           headers={'Origin': OWN}, status=303)
    b.post('/', {'name': 'trusted', 'csrf_token': token},
           headers={'Origin': 'https://admin.example.com'}, status=303)
    b.post('/', {'name': 'by-referer', 'csrf_token': token},
           headers={'Referer': OWN + '/some/page'}, status=303)
    b.post_json('/own/@@increment', {},
                headers={'Origin': OWN, 'X-CSRF-Token': token}, status=200)


def test_a_client_chosen_or_planted_token_is_refused(logged_in):
    s, b, token = logged_in
    b.set_cookie('csrf_token', 'x')  # what a sibling could plant
    r = s.refused(b.post, 403, '/', {'name': 'x', 'csrf_token': 'x'},
                  headers={'Origin': OWN, 'X-CSRF-Token': 'x'})
    assert 'CSRF token' in r.text
    r = s.refused(b.delete, 403, '/', headers={'Origin': OWN,
                                               'Accept': 'application/json'})
    assert 'CSRF token' in r.json['message']


def test_basic_credentials_need_a_json_body_and_no_foreign_origin(site):
    s = site()
    s.add_user()
    for body, ctype in [(b'name=x', 'application/x-www-form-urlencoded'),
                        (b'{"name": "x"}', 'text/plain'),
                        (b'', '')]:
        r = s.refused(s.app.post, 403, '/', body, content_type=ctype,
                      headers=basic())
        assert 'JSON body' in r.text
    r = s.refused(s.app.post_json, 403, '/', {'name': 'x'},
                  headers={**basic(), 'Origin': EVIL})
    assert r.json['message'].startswith('Refused: this request comes from')
    # curl -u with a JSON body, over http and https, no Origin: accepted
    s.app.post_json('/', {'name': 'x'}, headers=basic(), status=201)
    s.app.post_json('/', {'name': 'y'}, headers=basic(), status=201,
                    extra_environ={'wsgi.url_scheme': 'https',
                                   'HTTP_HOST': 'localhost'})


# -- the guard: hosts, sizes, methods, headers -----------------------------


def test_unknown_hosts_are_refused_but_health_answers(site):
    s = site(**{'zeostore.trusted_hosts': 'localhost .example.com'})
    for host in ('evil.example', 'example.org', 'localhost.evil'):
        r = s.app.get('/', headers={'Host': host, 'Accept':
                                    'application/json'}, status=400)
        assert 'zeostore.trusted_hosts' in r.json['message']
    s.app.get('/', headers={'Host': 'www.example.com'}, status=200)
    s.app.get('/', headers={'Host': 'example.com:8080'}, status=200)
    s.app.get('/@@health', headers={'Host': '10.1.2.3'}, status=200)


def raw_post(wsgi, body, **extra):
    """POST ``body`` as a server passes a chunked one (no
    Content-Length, the body in ``wsgi.input``), or as ``extra`` says;
    the status and the body of the answer."""
    environ = {
        'REQUEST_METHOD': 'POST', 'PATH_INFO': '/', 'QUERY_STRING': '',
        'SERVER_NAME': 'localhost', 'SERVER_PORT': '80',
        'HTTP_HOST': 'localhost', 'SERVER_PROTOCOL': 'HTTP/1.1',
        'wsgi.url_scheme': 'http', 'wsgi.errors': io.StringIO(),
        'wsgi.input': io.BytesIO(body), 'wsgi.input_terminated': True,
        'HTTP_TRANSFER_ENCODING': 'chunked',
        'CONTENT_TYPE': 'application/json',
        'HTTP_AUTHORIZATION': basic()['Authorization'],
        'HTTP_ACCEPT': 'application/json', **extra,
    }
    status = []
    data = b''.join(
        wsgi(environ, lambda line, h, e=None: status.append(line))
    )
    return int(status[0].split()[0]), data


class Unreadable(io.RawIOBase):
    def read(self, *args):
        raise AssertionError('the body was read')


def test_bodies_over_max_body_are_refused_unread(site):
    s = site(**{'zeostore.max_body': '1kb', 'zeostore.max_value': '512'})
    s.add_user()
    before = s.last()
    status, data = raw_post(
        s.wsgi, b'', CONTENT_LENGTH=str(10 << 20), **{
            'wsgi.input': Unreadable(), 'HTTP_TRANSFER_ENCODING': '',
        },
    )
    assert status == 413 and b'zeostore.max_body' in data
    for size, status in [(5000, 413), (100, 201)]:
        body = b'{"name": "c' + b'x' * size + b'"}'
        assert raw_post(s.wsgi, body)[0] == status
        if status == 201:
            before = s.last()
    r = s.app.post_json('/', {'name': 'v', 'attributes': {'a': 'x' * 600}},
                        headers=basic(), status=413)
    assert 'zeostore.max_value' in r.json['message']
    assert s.last() == before


def test_methods_and_content_types(site):
    s = site()
    s.add_user()
    s.app.post_json('/', {'name': 'doc'}, headers=basic())
    for path, allow in [('/', 'POST'), ('/doc', 'PATCH'),
                        ('/doc/@@increment', 'POST')]:
        r = s.refused(s.app.put, 405, path, headers=basic())
        assert allow in r.headers['Allow']
        r = s.app.options(path, status=204)
        assert allow in r.headers['Allow']
    s.refused(s.app.request, 405, '/doc', method='TRACE')
    r = s.refused(s.app.patch, 415, '/doc', 'a=1', headers=basic(),
                  content_type='application/x-www-form-urlencoded')
    assert 'application/json' in r.json['message']
    b = s.browser()
    s.login(b)
    token = b.get('/').forms[1]['csrf_token'].value
    r = s.refused(b.post, 415, '/', {'name': 'm', 'csrf_token': token},
                  headers={'Origin': OWN},
                  upload_files=[('f', 'f.txt', b'data')])
    assert 'multipart/form-data' in r.text


def test_security_headers_on_every_page(site):
    s = site()
    pages = [s.app.get('/'), s.app.get('/?format=json'),
             s.app.get('/nothing', status=404),
             s.app.get('/', headers={'Host': 'evil'}, status=400),
             s.app.post_json('/', {}, status=403),
             s.app.get('/@@login'), s.app.get('/@@health')]
    for r in pages:
        assert r.headers['X-Content-Type-Options'] == 'nosniff'
        assert r.headers['X-Frame-Options'] == 'DENY'
        assert "frame-ancestors 'none'" in r.headers[
            'Content-Security-Policy']
        assert "script-src" not in r.headers['Content-Security-Policy']
        assert r.headers['Referrer-Policy'] == 'same-origin'
    assert '<script' not in ''.join(r.text for r in pages)


def test_links_and_location_use_the_trusted_host(site):
    s = site()
    s.add_user()
    r = s.app.post_json('/', {'name': 'doc'}, headers=basic())
    assert r.location == 'http://localhost/doc/'
    page = s.app.get('/')
    assert 'href="/doc"' in page.text  # relative: no Host in links


# -- large values: a record of their own ------------------------------------


def data_fs_growth(tmp_path, large_value, value_bytes, increments=5):
    """Bytes Data.fs grows per increment of a small counter on an item
    that also holds a ``value_bytes`` string."""
    path = tmp_path / f'Data-{large_value}.fs'
    wsgi = main({}, **{
        'zodb_uri': f'file://{path}', 'zeostore.secret': SECRET,
        'zeostore.large_value': str(large_value),
        'zeostore.max_body': '2mb', 'zeostore.max_value': '2mb',
        'zeostore.lock_file': str(tmp_path / 'lock'),
    })
    add_user(get_databases(wsgi.registry).get(''), 'admin',
             'right-password')
    app = TestApp(wsgi)
    app.post_json('/', {'name': 'big', 'attributes': {
        'counter': 0, 'blob': 'x' * value_bytes}}, headers=basic())
    start = os.path.getsize(path)
    for _ in range(increments):
        app.post_json('/big/@@increment', {}, headers=basic())
    grown = (os.path.getsize(path) - start) / increments
    assert app.get('/big?format=json').json['attributes']['blob'] == (
        'x' * value_bytes
    )
    close_all()
    return grown


def test_increments_beside_a_large_value_rewrite_only_the_counter(
    tmp_path
):
    inline = data_fs_growth(tmp_path, 10 << 20, 1 << 20)
    boxed = data_fs_growth(tmp_path, 2048, 1 << 20)
    print(f'Data.fs growth per increment beside 1 MiB: inline '
          f'{inline:,.0f} bytes, boxed {boxed:,.0f} bytes')
    assert inline > 1 << 20
    assert boxed < 4096
