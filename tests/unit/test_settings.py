import os

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_zeostore.display import mask_password
from pyramid_zeostore.resolvers import ZEOFactory, parse_address
from pyramid_zeostore.settings import parse_settings


def parse(**settings):
    return parse_settings(
        {k.replace('__', '.'): v for k, v in settings.items()}
    )


def test_no_uri_means_no_databases():
    assert parse().databases == ()
    assert parse().primary is None


def test_primary_and_named_databases_in_order():
    s = parse_settings(
        {
            'zodb_uri': 'memory://',
            'zodb_uri.zeta': 'memory://z',
            'zodb_uri.alpha': 'memory://a',
        }
    )
    assert [d.name for d in s.databases] == ['', 'alpha', 'zeta']
    assert [d.dbkw['database_name'] for d in s.databases] == [
        '',
        'alpha',
        'zeta',
    ]
    assert s.primary.key == 'zodb_uri'


def test_zodbconn_aliases_are_accepted():
    s = parse_settings(
        {'zodbconn.uri': 'memory://', 'zodbconn.uri.other': 'memory://o'}
    )
    assert [(d.name, d.key) for d in s.databases] == [
        ('', 'zodbconn.uri'),
        ('other', 'zodbconn.uri.other'),
    ]


def test_alias_and_primary_may_agree():
    s = parse_settings({'zodb_uri': 'memory://', 'zodbconn.uri': 'memory://'})
    assert len(s.databases) == 1


def test_defaults():
    s = parse(zodb_uri='memory://')
    assert s.connect_timeout == 2.0
    assert s.retry_attempts == 3
    assert s.autostart is False
    assert s.conflict_lock is True
    assert s.appmaker == 'pyramid_zeostore.root.default_appmaker'
    assert s.lock_file.startswith('/')


def test_zeo_uri_with_extras():
    s = parse(
        zodb_uri='zeo:///tmp/x/zeo.sock?server_sync=true'
        '&addresses=127.0.0.1:8100,/tmp/y.sock,[::1]:9000'
        '&wait_timeout=1.5&connection_cache_size=500'
        '&ssl_cafile=/ca.pem&ssl_server_hostname=zeo.example'
    )
    spec = s.primary
    assert spec.is_zeo
    f = spec.factory
    assert isinstance(f, ZEOFactory)
    assert f.addresses == (
        '/tmp/x/zeo.sock',
        ('127.0.0.1', 8100),
        '/tmp/y.sock',
        ('::1', 9000),
    )
    assert f.kw['server_sync'] is True
    assert f.kw['wait_timeout'] == 1.5
    assert f.tls.cafile == '/ca.pem'
    assert f.tls.server_hostname == 'zeo.example'
    assert spec.dbkw['cache_size'] == 500
    assert s.lock_file == '/tmp/x/zeo.sock.lock'
    assert spec.address == list(f.addresses)


def test_zeo_tcp_uri():
    spec = parse(zodb_uri='zeo://127.0.0.1:8100').primary
    assert spec.factory.addresses == (('127.0.0.1', 8100),)
    assert spec.address == ('127.0.0.1', 8100)


def test_lock_file_setting_and_non_zeo_default():
    assert parse(zodb_uri='memory://', zeostore__lock_file='/l').lock_file == (
        '/l'
    )
    assert 'pyramid_zeostore-' in parse(zodb_uri='memory://').lock_file


def test_parse_address():
    assert parse_address(' /a/../b.sock ') == '/b.sock'
    with pytest.raises(ValueError):
        parse_address('nohostport')


@pytest.mark.parametrize(
    'settings, key, words',
    [
        ({'zodb_uri': 'zeo:///x.sock?debug=1'}, 'zodb_uri', 'debug'),
        (
            {'zodb_uri': 'zeo:///x.sock?wait_for_server_on_startup=1'},
            'zodb_uri',
            'connect_timeout',
        ),
        ({'zodb_uri': 'nope://x'}, 'zodb_uri', 'zodburi resolver'),
        ({'zodb_uri': 'just-a-path'}, 'zodb_uri', 'database URI'),
        ({'zodb_uri': '  '}, 'zodb_uri', 'got nothing'),
        ({'zodb_uri': 'file:///tmp/x.fs?foo=1'}, 'zodb_uri', 'foo'),
        ({'zodb_uri': 'zeo:///x.sock?bar=1'}, 'zodb_uri', 'bar'),
        ({'zodb_uri': 'zeo:///x.sock?wait_timeout=soon'}, 'zodb_uri', 'soon'),
        (
            {'zodb_uri': 'zeo:///x.sock?addresses=nohost'},
            'zodb_uri',
            'host:port',
        ),
        (
            {'zodb_uri': 'zconfig:///nonexistent/zodb.conf'},
            'zodb_uri',
            'valid database URI',
        ),
        ({'zodb_uri.x': 'memory://'}, 'zodb_uri', 'primary'),
        (
            {'zodb_uri': 'memory://', 'zodb_uri.': 'memory://'},
            'zodb_uri.',
            'database name',
        ),
        (
            {'zodb_uri': 'memory://', 'zodb_uri.a-b': 'memory://'},
            'zodb_uri.a-b',
            'database name',
        ),
        (
            {'zodb_uri': 'memory://a', 'zodbconn.uri': 'memory://b'},
            'zodbconn.uri',
            'set only one',
        ),
        (
            {
                'zodb_uri': 'memory://',
                'zodb_uri.x': 'memory://1',
                'zodbconn.uri.x': 'memory://2',
            },
            'zodbconn.uri.x',
            'set it once',
        ),
        (
            {'zodb_uri': 'memory://', 'retry.attempts': 'abc'},
            'retry.attempts',
            'whole number',
        ),
        (
            {'zodb_uri': 'memory://', 'retry.attempts': '0'},
            'retry.attempts',
            'from 1 to 100',
        ),
        (
            {'zodb_uri': 'memory://', 'zeostore.connect_timeout': '-1'},
            'zeostore.connect_timeout',
            'seconds',
        ),
        (
            {'zodb_uri': 'memory://', 'zeostore.connect_timeout': 'nan'},
            'zeostore.connect_timeout',
            'seconds',
        ),
        (
            {'zodb_uri': 'memory://', 'zeostore.connect_timeout': 'x'},
            'zeostore.connect_timeout',
            'seconds',
        ),
        (
            {'zodb_uri': 'memory://', 'zeostore.autostart': 'maybe'},
            'zeostore.autostart',
            'true or false',
        ),
        (
            {'zodb_uri': 'memory://', 'zeostore.autostart': 'true'},
            'zeostore.zeo_conf',
            'zeo.conf',
        ),
        (
            {
                'zodb_uri': 'memory://',
                'zeostore.autostart': 'true',
                'zeostore.zeo_conf': '/nonexistent/zeo.conf',
            },
            'zeostore.zeo_conf',
            'existing file',
        ),
        # the list of values that used to pass
        ({'zodb_uri': 'zeo://'}, 'zodb_uri', 'expected a server address'),
        ({'zodb_uri': 'zeo://:0'}, 'zodb_uri', 'port 1 to 65535'),
        ({'zodb_uri': 'zeo://h:99999'}, 'zodb_uri', 'port 1 to 65535'),
        ({'zodb_uri': 'zeo:///x.sock?wait_timeout=inf'}, 'zodb_uri',
         'wait_timeout=inf: expected a number of seconds from 0 to 300'),
        ({'zodb_uri': 'zeo:///x.sock?wait_timeout=-1'}, 'zodb_uri',
         'from 0 to 300'),
        ({'zodb_uri': 'zeo:///x.sock?cache_size=-1'}, 'zodb_uri',
         'cache_size=-1: expected a number >= 0'),
        ({'zodb_uri': 'zeo:///x.sock?ssl_keyfile=/k.pem'}, 'zodb_uri',
         'ssl_certfile'),
        ({'zodb_uri': 'zeo:///x.sock?connection_cache_size=-5'}, 'zodb_uri',
         'expected connection_cache_size >= 0, not -5'),
        ({'zodb_uri': 'memory://?connection_pool_size=0'}, 'zodb_uri',
         'expected connection_pool_size >= 1, not 0'),
        ({'zodb_uri': 'memory://', 'zeostore.connect_timeout': '1e9'},
         'zeostore.connect_timeout', 'from 0 to 300'),
        ({'zodb_uri': 'memory://', 'zeostore.reply_timeout': '0'},
         'zeostore.reply_timeout', 'from 0.05 to 3600'),
        ({'zodb_uri': 'memory://', 'zeostore.reply_timeout': 'inf'},
         'zeostore.reply_timeout', 'seconds'),
        ({'zodb_uri': 'memory://', 'retry.attempts': '1000000'},
         'retry.attempts', 'from 1 to 100'),
        ({'zodb_uri': 'memory://', 'zeostore.retry_after': '-5'},
         'zeostore.retry_after', 'from 0 to 86400'),
        ({'zodb_uri': 'memory://', 'zeostore.retry_backoff': '11'},
         'zeostore.retry_backoff', 'seconds'),
        ({'zodb_uri': 'memory://', 'zeostore.retry_backoff': '0.3',
          'zeostore.retry_backoff_max': '0.1'},
         'zeostore.retry_backoff_max', 'at least zeostore.retry_backoff'),
        ({'zodb_uri': 'memory://', 'zeostore.autostart_timeout': '0'},
         'zeostore.autostart_timeout', 'seconds'),
        ({'zodb_uri': 'memory://', 'zeostore.slow_request_log': '1e6'},
         'zeostore.slow_request_log', 'seconds'),
        ({'zodb_uri': 'memory://', 'zeostore.lock_file': '/tmp'},
         'zeostore.lock_file', 'file'),
        ({'zodb_uri': 'memory://', 'zeostore.lock_file': '/tmp/locks/'},
         'zeostore.lock_file', 'file'),
        ({'zodb_uri': 'memory://', 'zeostore.prometheus_path': '/@@health'},
         'zeostore.prometheus_path', 'health'),
    ],
)
def test_bad_settings_name_the_key(settings, key, words):
    with pytest.raises(ConfigurationError) as info:
        parse_settings(settings)
    err = info.value
    assert err.key == key
    assert str(err).startswith(key + ':')
    assert words in str(err)


def test_boolean_and_number_spellings(tmp_path):
    conf = tmp_path / 'zeo.conf'
    conf.write_text('')
    s = parse_settings(
        {
            'zodb_uri': 'memory://',
            'zeostore.autostart': 'yes',
            'zeostore.zeo_conf': str(conf),
            'zeostore.conflict_lock': False,
            'zeostore.connect_timeout': '0.5',
            'zeostore.retry_backoff': '0.3',
            'zeostore.appmaker': ' my.module.appmaker ',
            'retry.attempts': ' 7 ',
            'zeostore.retry_after': '',
        }
    )
    assert s.autostart is True
    assert s.conflict_lock is False
    assert s.connect_timeout == 0.5
    assert s.retry_attempts == 7
    assert s.retry_backoff_max == 0.3  # follows the base up
    assert s.appmaker == 'my.module.appmaker'
    assert s.retry_after == 5


def test_callable_appmaker_is_kept():
    def maker(root):
        return root

    assert parse(zodb_uri='memory://', zeostore__appmaker=maker).appmaker is (
        maker
    )


def test_file_and_demo_uris_resolve_without_opening(tmp_path):
    path = tmp_path / 'Data.fs'
    s = parse_settings(
        {
            'zodb_uri': f'file://{path}',
            'zodb_uri.demo': 'demo:(memory://a)/(memory://b)',
        }
    )
    assert not path.exists()  # parsing opened nothing
    assert not s.primary.is_zeo
    assert s.primary.address == f'file://{path}'


# -- zeostore.socket_mode / zeostore.socket_group ----------------------------


def test_socket_defaults_owner_only_then_group():
    s = parse(zodb_uri='memory://')
    assert (s.socket_mode, s.socket_group) == (0o600, None)
    s = parse(zodb_uri='memory://', zeostore__socket_group=' 0 ')
    assert (s.socket_mode, s.socket_group) == (0o660, 0)


@pytest.mark.parametrize(
    'raw, mode',
    [('0660', 0o660), ('660', 0o660), ('0o640', 0o640), (' 0600 ', 0o600),
     ('0O770', 0o770), (0o660, 0o660), ('', 0o600)],
)
def test_socket_mode_spellings(raw, mode):
    s = parse(zodb_uri='memory://', zeostore__socket_mode=raw)
    assert s.socket_mode == mode


def test_socket_group_by_name(monkeypatch):
    import grp
    import types

    monkeypatch.setattr(
        grp, 'getgrnam',
        lambda name: types.SimpleNamespace(gr_gid={'web': 4321}[name]),
    )
    monkeypatch.setattr(os, 'geteuid', lambda: 1000)
    monkeypatch.setattr(os, 'getegid', lambda: 1000)
    monkeypatch.setattr(os, 'getgroups', lambda: [1000, 4321])
    s = parse(
        zodb_uri='memory://',
        zeostore__socket_group='web',
        zeostore__socket_mode='0640',
    )
    assert (s.socket_mode, s.socket_group) == (0o640, 4321)
    # The user's own primary group needs no supplementary membership.
    monkeypatch.setattr(os, 'getgroups', lambda: [])
    s = parse(zodb_uri='memory://', zeostore__socket_group='1000')
    assert s.socket_group == 1000


@pytest.mark.parametrize(
    'raw',
    ['0666', '0602', '0604', '0400', '0200', '0o1660', '777', '0689', 'rw',
     '-0600', True, 0o666],
)
def test_bad_socket_mode(raw):
    with pytest.raises(ConfigurationError) as info:
        parse(zodb_uri='memory://', zeostore__socket_mode=raw)
    assert info.value.key == 'zeostore.socket_mode'
    assert 'nothing for others' in str(info.value)


def test_unknown_socket_group():
    with pytest.raises(ConfigurationError) as info:
        parse(zodb_uri='memory://', zeostore__socket_group='no-such-grp-zs')
    assert info.value.key == 'zeostore.socket_group'
    assert 'existing group' in str(info.value)


def test_socket_group_the_user_is_not_in(monkeypatch):
    monkeypatch.setattr(os, 'geteuid', lambda: 1000)
    monkeypatch.setattr(os, 'getegid', lambda: 1000)
    monkeypatch.setattr(os, 'getgroups', lambda: [1000, 27])
    with pytest.raises(ConfigurationError) as info:
        parse(zodb_uri='memory://', zeostore__socket_group='4321')
    assert info.value.key == 'zeostore.socket_group'
    assert 'id -Gn' in str(info.value)


@pytest.mark.parametrize('scheme', ['postgresql', 'PostgreSQL', 'pgsql'])
def test_postgresql_scheme_says_to_use_postgres(scheme):
    uri = f'{scheme}://zodb:s3cret@127.0.0.1:5432/zodb'
    with pytest.raises(ConfigurationError) as info:
        parse(zodb_uri=uri)
    assert info.value.key == 'zodb_uri'
    message = str(info.value)
    assert message.startswith('zodb_uri: expected postgres://user:')
    assert "RelStorage's scheme for PostgreSQL is postgres://" in message
    assert 's3cret' not in message and 'zodb:***@127.0.0.1' in message


def test_relstorage_schemes_without_relstorage(monkeypatch):
    import zodburi

    def no_resolver(uri):
        raise zodburi.NoResolverForScheme(uri)

    monkeypatch.setattr(zodburi, 'resolve_uri', no_resolver)
    with pytest.raises(ConfigurationError) as info:
        parse(zodb_uri='postgres://u:pw@h/db')
    assert 'postgres:// is RelStorage\'s: pip install ' \
        '"pyramid_zeostore[relstorage]"' in str(info.value)
    assert ':pw@' not in str(info.value)


@pytest.mark.parametrize(
    'uri, shown',
    [
        ('postgres://u:pw@h:1/db?x=1', 'postgres://u:***@h:1/db?x=1'),
        ('mysql://u:p@ss@h/db', 'mysql://u:***@h/db'),
        ('postgres://u@h/db', 'postgres://u@h/db'),
        ('file:///a@b/Data.fs', 'file:///a@b/Data.fs'),
        ('demo:memory://', 'demo:memory://'),
    ],
)
def test_passwords_are_masked_in_uri_errors(uri, shown):
    assert mask_password(uri) == shown


@pytest.mark.parametrize(
    'uri, words',
    [
        ('postgres://u:pw@127.0.0.1/db?bogus=1', 'unknown URI parameter'),
        ('postgres://u:pw@127.0.0.1:port/db', 'valid database URI'),
    ],
)
def test_relstorage_uri_errors_mask_the_password(uri, words):
    pytest.importorskip('relstorage')
    with pytest.raises(ConfigurationError) as info:
        parse(zodb_uri=uri)
    assert words in str(info.value)
    assert 'u:***@127.0.0.1' in str(info.value)
    assert ':pw@' not in str(info.value)


def test_the_parser_takes_every_default_from_the_dataclass():
    from dataclasses import fields

    from pyramid_zeostore.settings import READERS, ZeostoreSettings

    parsed = parse_settings({})
    plain = ZeostoreSettings()
    derived = {'lock_file'}  # beside the ZEO socket, else in the temp dir
    for f in fields(ZeostoreSettings):
        if f.name not in derived:
            assert getattr(parsed, f.name) == getattr(plain, f.name), f.name
    special = {
        'databases', 'appmaker', 'zeo_conf', 'lock_file', 'socket_mode',
        'socket_group', 'startup_strict',
    }
    read = {name for _, name, _ in READERS}
    assert read | special == {f.name for f in fields(ZeostoreSettings)}
    assert not read & special


@pytest.mark.parametrize('value, on, strict', [
    ('true', True, False), ('false', False, False),
    ('strict', True, True), (' Strict ', True, True),
])
def test_check_on_startup_may_be_strict(value, on, strict):
    parsed = parse_settings({'zodb_uri': 'memory://',
                             'zeostore.check_on_startup': value})
    assert (parsed.check_on_startup, parsed.startup_strict) == (on, strict)


def test_check_on_startup_names_its_three_values():
    with pytest.raises(ConfigurationError) as info:
        parse_settings({'zodb_uri': 'memory://',
                        'zeostore.check_on_startup': 'sometimes'})
    assert info.value.key == 'zeostore.check_on_startup'
    assert 'expected true, false or strict' in str(info.value)


def test_check_dotted_relative_names_need_the_package():
    from pyramid_zeostore.settings import check_dotted

    # pzeo has no app package: a relative name is left to the app.
    check_dotted({'zeostore.appmaker': '.models.appmaker'})
    with pytest.raises(ConfigurationError) as info:
        check_dotted({'zeostore.appmaker': '.no_such.appmaker'},
                     'pyramid_zeostore')
    assert info.value.key == 'zeostore.appmaker'
    check_dotted({'zeostore.appmaker': '.root.default_appmaker'},
                 'pyramid_zeostore')
