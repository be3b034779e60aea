"""The ready app's settings: every key, its default, what it accepts and
what it refuses (naming the key, never showing a secret)."""

from __future__ import annotations

import dataclasses

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_zeostore.app.settings import (
    MASKED,
    MIN_SECRET,
    READERS,
    AppSettings,
    parse_app_settings,
)

SECRET = 'k' * MIN_SECRET


def refused(settings):
    with pytest.raises(ConfigurationError) as info:
        parse_app_settings(settings)
    return info.value


def test_every_field_has_a_reader_and_a_zeostore_key():
    names = [name for _, name, _ in READERS]
    assert sorted(names) == sorted(
        f.name for f in dataclasses.fields(AppSettings)
    )
    assert all(key == f'zeostore.{name}' for key, name, _ in READERS)


def test_defaults():
    s = parse_app_settings({})
    assert s == AppSettings()
    assert s.anonymous == 'read'
    assert s.secret is None and s.secret_file is None
    assert s.secure_cookies is False
    assert s.session_timeout == 3600
    assert s.trusted_origins == ()
    assert s.trusted_hosts == ('localhost', '127.0.0.1', '::1')
    assert (s.max_body, s.max_value, s.large_value) == (
        1 << 20, 256 << 10, 2048,
    )
    assert (s.login_attempts, s.login_window) == (5, 60.0)


@pytest.mark.parametrize('key', [
    'zeostore.anonymous', 'zeostore.secret', 'zeostore.secret_file',
    'zeostore.session_timeout', 'zeostore.max_body', 'zeostore.max_value',
    'zeostore.large_value', 'zeostore.login_attempts',
    'zeostore.login_window',
])
def test_a_blank_value_means_the_default(key):
    assert parse_app_settings({key: '  '}) == AppSettings()


def test_the_result_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_app_settings({}).max_body = 1


@pytest.mark.parametrize('key, raw, name, value', [
    ('zeostore.anonymous', ' NONE ', 'anonymous', 'none'),
    ('zeostore.anonymous', 'read', 'anonymous', 'read'),
    ('zeostore.secret', f' {SECRET} ', 'secret', SECRET),
    ('zeostore.secret_file', ' var/secret ', 'secret_file', 'var/secret'),
    ('zeostore.secure_cookies', 'true', 'secure_cookies', True),
    ('zeostore.secure_cookies', ' On ', 'secure_cookies', True),
    ('zeostore.secure_cookies', 'no', 'secure_cookies', False),
    ('zeostore.secure_cookies', True, 'secure_cookies', True),
    ('zeostore.session_timeout', '60', 'session_timeout', 60),
    ('zeostore.session_timeout', ' 7200 ', 'session_timeout', 7200),
    ('zeostore.trusted_origins',
     'https://Admin.Example.com\nhttp://localhost:6543', 'trusted_origins',
     ('https://admin.example.com', 'http://localhost:6543')),
    ('zeostore.trusted_origins', 'https://a.example/', 'trusted_origins',
     ('https://a.example',)),
    ('zeostore.trusted_origins', 'http://[::1]:6543', 'trusted_origins',
     ('http://[::1]:6543',)),
    ('zeostore.trusted_origins', '', 'trusted_origins', ()),
    ('zeostore.trusted_hosts', 'Example.COM [::1] .example.org *',
     'trusted_hosts', ('example.com', '::1', '.example.org', '*')),
    ('zeostore.trusted_hosts', 'localhost', 'trusted_hosts',
     ('localhost',)),
    ('zeostore.max_body', '1mb', 'max_body', 1 << 20),
    ('zeostore.max_body', '2 MB', 'max_body', 2 << 20),
    ('zeostore.max_body', '1gb', 'max_body', 1 << 30),
    ('zeostore.max_body', '256kb', 'max_body', 256 << 10),
    ('zeostore.max_body', ' 300000 ', 'max_body', 300000),
    ('zeostore.max_value', '1kb', 'max_value', 1024),
    ('zeostore.max_value', '2048', 'max_value', 2048),
    ('zeostore.large_value', '4kb', 'large_value', 4096),
    ('zeostore.large_value', '1', 'large_value', 1),
    ('zeostore.login_attempts', '1', 'login_attempts', 1),
    ('zeostore.login_attempts', '20', 'login_attempts', 20),
    ('zeostore.login_window', '0.5', 'login_window', 0.5),
    ('zeostore.login_window', '0', 'login_window', 0.0),
])
def test_good_values(key, raw, name, value):
    assert getattr(parse_app_settings({key: raw}), name) == value


@pytest.mark.parametrize('key, raw', [
    ('zeostore.anonymous', 'write'),
    ('zeostore.anonymous', 'yes'),
    ('zeostore.secure_cookies', 'maybe'),
    ('zeostore.session_timeout', '59'),
    ('zeostore.session_timeout', '1.5'),
    ('zeostore.session_timeout', 'an hour'),
    ('zeostore.trusted_origins', 'https://a.example/admin'),
    ('zeostore.trusted_origins', 'https://a.example/?x=1'),
    ('zeostore.trusted_origins', 'https://a.example?x=1'),
    ('zeostore.trusted_origins', 'https://user@a.example'),
    ('zeostore.trusted_origins', 'https://user:pw@a.example'),
    ('zeostore.trusted_origins', 'ftp://a.example'),
    ('zeostore.trusted_origins', 'javascript://a.example'),
    ('zeostore.trusted_origins', 'a.example'),
    ('zeostore.trusted_origins', 'https://'),
    ('zeostore.trusted_origins', 'https://ok.example https://b.example/x'),
    ('zeostore.trusted_hosts', 'a.example/x'),
    ('zeostore.trusted_hosts', 'localhost http://a.example'),
    ('zeostore.trusted_hosts', '[]'),
    ('zeostore.max_body', '0'),
    ('zeostore.max_body', '-1'),
    ('zeostore.max_body', '1.5mb'),
    ('zeostore.max_body', '1tb'),
    ('zeostore.max_body', 'lots'),
    ('zeostore.max_value', 'x'),
    ('zeostore.large_value', '0'),
    ('zeostore.login_attempts', '0'),
    ('zeostore.login_attempts', 'five'),
    ('zeostore.login_window', '-1'),
    ('zeostore.login_window', 'nan'),
    ('zeostore.login_window', 'inf'),
    ('zeostore.login_window', 'a minute'),
])
def test_bad_values_name_their_key(key, raw):
    e = refused({key: raw})
    assert e.key == key
    assert str(e).startswith(f'{key}: expected')


@pytest.mark.parametrize('length', [8, MIN_SECRET - 1])
def test_a_short_secret_is_refused_and_not_shown(length):
    secret = ('Zq7' * MIN_SECRET)[:length]
    e = refused({'zeostore.secret': secret})
    assert e.key == 'zeostore.secret'
    assert e.value == MASKED
    assert MASKED in str(e)
    assert secret not in str(e)
    assert str(MIN_SECRET) in str(e)


def test_a_secret_of_the_minimum_length_is_taken():
    assert parse_app_settings({'zeostore.secret': SECRET}).secret == SECRET


def test_secret_and_secret_file_together_are_refused():
    secret = 'S3cr3t-' * 8
    e = refused({
        'zeostore.secret': secret, 'zeostore.secret_file': 'var/secret',
    })
    assert e.key == 'zeostore.secret_file'
    assert 'not both' in str(e)
    assert secret not in str(e)


def test_max_value_over_max_body_is_refused():
    e = refused({'zeostore.max_body': '1kb', 'zeostore.max_value': '2kb'})
    assert e.key == 'zeostore.max_value'
    assert '1024' in str(e)


def test_a_max_body_under_the_default_max_value_is_refused():
    e = refused({'zeostore.max_body': '100kb'})
    assert e.key == 'zeostore.max_value'


def test_max_value_equal_to_max_body_is_taken():
    s = parse_app_settings(
        {'zeostore.max_body': '100kb', 'zeostore.max_value': '102400'}
    )
    assert s.max_body == s.max_value == 100 << 10


def test_trusted_origins_are_compared_as_browsers_send_them():
    """Default ports dropped, lower case: what ``Origin`` carries."""
    parsed = parse_app_settings({'zeostore.trusted_origins':
                                 'https://Admin.Example.com:443 '
                                 'http://x.example:8080'})
    assert parsed.trusted_origins == ('https://admin.example.com',
                                      'http://x.example:8080')


@pytest.mark.parametrize('value', ['https://a.example:bad', 'http://:80',
                                   'https://a.example/#frag'])
def test_trusted_origins_without_a_usable_host_or_port(value):
    with pytest.raises(ConfigurationError) as e:
        parse_app_settings({'zeostore.trusted_origins': value})
    assert e.value.key == 'zeostore.trusted_origins'


@pytest.mark.parametrize('key, value', [
    ('zeostore.trusted_hosts', 'example.com:8080'),  # ports not compared
    ('zeostore.max_body', '0kb'),
])
def test_values_that_would_never_match_or_refuse_everything(key, value):
    with pytest.raises(ConfigurationError) as e:
        parse_app_settings({key: value})
    assert e.value.key == key
