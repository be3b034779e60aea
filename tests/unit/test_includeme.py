"""includeme, the appmaker directive, main and the error views.

``config.include('pyramid_zeostore')`` registers and opens nothing, bad
settings fail at include, the appmaker setting and directive (conflicts,
non-callables), ``main`` on memory:// (with and without the startup
check, without a URI), the 409 and 503 views, a write cut off by the
server, pyramid_zodbconn-style settings and a SQL storage's
disconnection; all in this process on in-memory databases. ``main``
failing fast on an absent ZEO socket is in tests/functional/test_outage.py.
"""

from __future__ import annotations

import pytest
from pyramid import testing
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationConflictError, ConfigurationError
from webtest import TestApp
from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import ConflictError

import pyramid_zeostore
from pyramid_zeostore import (
    Folder,
    IDatabases,
    ZeostoreSettings,
    get_databases,
    main,
)
from pyramid_zeostore.interfaces import IAppmaker, IZeostoreSettings


def appmaker(zodb_root):
    return zodb_root.setdefault('custom', Folder())


def other_appmaker(zodb_root):
    return zodb_root


def make_config(**settings):
    config = Configurator(settings={'zodb_uri': 'memory://', **settings})
    config.include('pyramid_zeostore')
    return config


def test_includeme_registers_and_opens_nothing():
    config = make_config()
    config.commit()
    registry = config.registry
    assert isinstance(registry.getUtility(IZeostoreSettings), ZeostoreSettings)
    databases = registry.getUtility(IDatabases)
    assert not databases.is_open
    assert registry.getUtility(IAppmaker) is pyramid_zeostore.default_appmaker
    settings = registry.settings
    assert settings['retry.attempts'] == 3
    assert settings['tm.manager_hook'] is pyramid_zeostore.request.manager_hook


def test_includeme_without_uri_fails_at_include():
    config = Configurator(settings={'zeostore.autostart': 'true',
                                    'zeostore.zeo_conf': __file__})
    with pytest.raises(ConfigurationError) as info:
        config.include('pyramid_zeostore')
    assert info.value.key == 'zodb_uri'
    assert 'zodb_uri = zeo://' in str(info.value)
    # nothing was set up, so autostart cannot run
    assert config.registry.queryUtility(IDatabases) is None


@pytest.mark.parametrize('uri, starts', [
    ('file://{tmp}/Data.fs', False),
    ('memory://', False),
    ('zeo://{tmp}/zeo.sock', True),
    ('demo:(memory://)/(zeo://{tmp}/zeo.sock)', True),
    ('zconfig://{tmp}/db.conf', True),  # may name a ZEO client
])
def test_autostart_only_for_a_database_zeo_may_serve(
    tmp_path, monkeypatch, caplog, uri, starts
):
    # The one-line move to file:// leaves autostart = true behind: a
    # server started then would lock the very file the app opens.
    started = []
    monkeypatch.setattr(pyramid_zeostore, '_autostart', started.append)
    (tmp_path / 'db.conf').write_text(
        '<zodb>\n  <mappingstorage/>\n</zodb>\n'
    )
    config = Configurator(settings={
        'zodb_uri': uri.format(tmp=tmp_path),
        'zeostore.autostart': 'true', 'zeostore.zeo_conf': __file__,
        'zeostore.check_on_startup': 'false',
    })
    config.include('pyramid_zeostore')
    config.commit()
    assert bool(started) is starts
    ignored = 'zeostore.autostart is ignored' in caplog.text
    assert ignored is not starts


def test_get_databases_without_the_include_says_what_to_do():
    config = Configurator(settings={})
    config.commit()
    with pytest.raises(ConfigurationError, match='set zodb_uri'):
        get_databases(config.registry)


@pytest.mark.parametrize('key', [
    'zeostore.appmaker', 'tm.manager_hook', 'tm.commit_veto',
    'tm.activate_hook', 'retry.activate_hook',
])
@pytest.mark.parametrize('value, words', [
    ('no_such_module.maker', 'ModuleNotFoundError'),
    ('pyramid_zeostore:no_such_name', "has no attribute 'no_such_name'"),
    ('pyramid_zeostore.__doc__', 'expected the dotted name of a callable'),
])
def test_a_dotted_name_setting_that_does_not_import_names_its_key(
    key, value, words
):
    with pytest.raises(ConfigurationError) as info:
        make_config(**{key: value})
    assert info.value.key == key
    assert str(info.value).startswith(key + ':') and words in str(info.value)


def test_bad_setting_fails_at_include():
    with pytest.raises(ConfigurationError, match='retry.attempts'):
        make_config(**{'retry.attempts': 'many'})


def test_appmaker_setting_and_directive():
    config = make_config(**{'zeostore.appmaker': f'{__name__}.appmaker'})
    config.commit()
    assert config.registry.getUtility(IAppmaker) is appmaker
    # An application's own call overrides the setting.
    config = make_config(**{'zeostore.appmaker': f'{__name__}.appmaker'})
    config.set_zodb_appmaker(other_appmaker)
    config.commit()
    assert config.registry.getUtility(IAppmaker) is other_appmaker
    intr = config.registry.introspector.get_category('zodb appmakers')
    assert intr[0]['introspectable']['appmaker'] is other_appmaker


def test_double_registration_conflicts():
    config = make_config()
    config.set_zodb_appmaker(appmaker)
    config.set_zodb_appmaker(other_appmaker)
    with pytest.raises(ConfigurationConflictError):
        config.commit()


def test_appmaker_must_be_callable():
    config = make_config()
    config.set_zodb_appmaker('pyramid_zeostore.__doc__')
    with pytest.raises(ConfigurationError, match='zeostore.appmaker'):
        config.commit()


def test_main_serves_a_memory_database():
    app = TestApp(main({}, zodb_uri='memory://'))
    assert app.get('/', headers={'Accept': 'application/json'}).json[
        'type'
    ] == 'folder'


def test_main_without_startup_check_opens_nothing():
    router = main(
        {}, zodb_uri='memory://', **{'zeostore.check_on_startup': 'false'}
    )
    assert not get_databases(router.registry).is_open


def test_main_without_uri_says_what_to_set():
    with pytest.raises(ConfigurationError, match='zodb_uri'):
        main({})


def boom_conflict(request):
    raise ConflictError('always')


def boom_down(request):
    raise ClientDisconnected('gone')


@pytest.mark.parametrize(
    'view, status, words',
    [
        (boom_conflict, 409, 'changed by another request 3 time(s)'),
        (boom_down, 503, 'not reachable'),
    ],
)
def test_error_views_render_409_and_503(view, status, words):
    config = make_config(**{'zeostore.retry_after': '7'})
    config.add_route('boom', '/boom')
    config.add_view(view, route_name='boom')
    app = TestApp(config.make_wsgi_app())
    res = app.get('/boom', headers={'Accept': 'text/html'}, status=status)
    assert words in res.text
    assert res.content_type == 'text/html'
    assert words in app.get('/boom', status=status).text  # text/plain
    res = app.get('/boom', headers={'Accept': 'application/json'},
                  status=status)
    assert words in res.json['message']
    if status == 503:
        assert res.headers['Retry-After'] == '7'


def test_a_write_cut_off_by_the_server_may_have_been_saved():
    config = make_config(**{'retry.attempts': '1'})
    config.add_route('boom', '/boom')
    config.add_view(boom_down, route_name='boom')
    app = TestApp(config.make_wsgi_app())
    # its last (only) attempt lost the server: the commit may have landed
    res = app.post('/boom', status=503)
    assert 'may or may not have been saved' in res.text
    res = app.get('/boom', status=503)
    assert 'nothing was saved' in res.text


def test_pyramid_zodbconn_style_config_moves_over():
    config = Configurator(settings={'zodbconn.uri': 'memory://'})
    config.include('pyramid_zeostore')
    config.commit()
    assert get_databases(config.registry).specs[0].key == 'zodbconn.uri'
    testing.tearDown()


class DriverGone(Exception):
    """What a SQL driver raises when its server went away."""


def gone(request):
    raise DriverGone('server closed the connection')


def other_failure(request):
    raise KeyError('a bug')


def test_a_sql_storages_disconnection_is_a_503(monkeypatch):
    from pyramid_zeostore import get_databases

    config = make_config()
    config.add_route('gone', '/gone')
    config.add_view(gone, route_name='gone')
    config.add_route('bug', '/bug')
    config.add_view(other_failure, route_name='bug')
    app = TestApp(config.make_wsgi_app())
    databases = get_databases(config.registry)
    # before the databases open, nothing is known to mean "gone"
    assert databases.disconnected_exceptions() == ()
    db = databases.get()

    class Driver:
        disconnected_exceptions = (DriverGone,)

    class Adapter:
        driver = Driver()

    monkeypatch.setattr(db.storage, '_adapter', Adapter(), raising=False)
    databases._disconnected = None
    assert databases.disconnected_exceptions() == (DriverGone,)
    res = app.post('/gone', status=503)
    assert 'may or may not have been saved' in res.text
    assert res.headers['Retry-After']
    assert 'nothing was saved' in app.get('/gone', status=503).text
    with pytest.raises(KeyError):  # anything else stays what it is
        app.get('/bug')
    databases.close()
