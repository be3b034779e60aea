"""The ready app's rarer security paths, over a real ZEO server (the
fixtures of test_security.py): the login form throttled, a login posted
while there are no users or no sessions, logging out when not logged in
and as a JSON client, a form post with sessions off, and a database that
cannot tell who the user is."""

from __future__ import annotations

from pyramid_zeostore.app import security as security_module
from pyramid_zeostore.app.users import USERS_KEY
from pyramid_zeostore.root import bootstrap

from .test_security import OWN, SECRET, basic, server, site  # noqa: F401


def test_the_login_form_is_throttled_too(site):  # noqa: F811
    s = site(**{'zeostore.login_attempts': '2'})
    s.add_user()
    b = s.browser(REMOTE_ADDR='192.0.2.9')
    for _ in range(2):
        assert s.login(b, password='wrong').status_int == 403
    r = s.login(b)  # the right password, too soon
    assert r.status_int == 429
    assert 0 < int(r.headers['Retry-After']) <= 60
    assert 'Too many failed logins' in r.text
    assert 'zeostore_session=' not in r.headers.get('Set-Cookie', '')


def test_a_login_posted_as_the_last_user_goes_is_refused(
    site  # noqa: F811
):
    """The form was shown while there was a user, who was removed (pzeo
    deluser) before the post: refused, saying there are no users."""
    s = site()
    s.add_user()
    b = s.browser()
    form = b.get('/@@login').forms[0]
    bootstrap(s.db, lambda root: root[USERS_KEY].remove('admin'))
    form['name'], form['password'] = 'admin', 'right-password'
    r = s.refused(form.submit, 403, headers={'Origin': OWN})
    assert 'no users yet' in r.text and 'pzeo adduser' in r.text
    assert 'zeostore_session=' not in r.headers.get('Set-Cookie', '')


def test_logout_as_a_json_client_and_when_logged_out(site):  # noqa: F811
    s = site()
    s.add_user()
    b = s.browser()
    r = b.get('/@@logout')  # nobody to log out: back to the front page
    assert r.status_int == 303 and r.location == 'http://localhost/'
    s.login(b)
    form = b.get('/@@logout').forms[0]
    token = form['csrf_token'].value
    r = b.post_json('/@@logout', {}, headers={
        'Origin': OWN, 'X-CSRF-Token': token, 'Accept': 'application/json',
    })
    assert r.json == {'logged_out': True}
    assert 'Log in' in b.get('/').text


def test_a_login_form_posted_with_sessions_off_is_refused(
    site  # noqa: F811
):
    s = site(**{'zeostore.secret': ''})
    r = s.refused(s.app.post, 403, '/@@login',
                  {'name': 'admin', 'password': 'x'},
                  headers={'Origin': OWN})
    assert 'Sign-in by form is off' in r.text
    assert 'HTTP Basic' in r.text


def test_an_identity_the_database_cannot_give_is_a_503(
    site, monkeypatch  # noqa: F811
):
    """The users' record cannot be read (the server went away): the
    request answers 503 with Retry-After, never a traceback, and the
    error page renders without an identity."""
    from pyramid_zeostore import DatabaseUnavailable

    s = site()
    s.add_user()

    def down(self, request):
        raise DatabaseUnavailable('', 'zeo.sock', 1.0, 'gone')

    monkeypatch.setattr(security_module.SecurityPolicy, 'users', down)
    r = s.app.post_json('/', {'name': 'x'}, headers=basic(), status=503)
    assert 'Retry-After' in r.headers
    # A read needs no identity: the page renders as for anyone.
    r = s.app.get('/', headers=basic(), status=200)
    assert 'Log in' in r.text and 'admin' not in r.text
