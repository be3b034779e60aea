"""The pytest plugin in test sessions of its own (pytester), as a
project that depends on pyramid_zeostore gets it: by its entry point.

Each session runs in a subprocess: an in-process one would drop the
modules it imported from sys.modules when it ends, and the classes of a
module imported again are not the ones ZODB pickled before.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ['pytester']

APP_INI = """\
[app:main]
use = egg:pyramid_zeostore
zodb_uri = file://%(here)s/var/Data.fs
zeostore.health_path = /@@from-the-ini
"""


def test_one_zeo_server_for_the_session(pytester):
    pytester.makepyfile(test_server="""
        import os

        PIDS = []

        def test_first(zeo_server):
            PIDS.append(zeo_server.pid)

        def test_second(zeo_server, zodb_root):
            PIDS.append(zeo_server.pid)
            assert PIDS[0] == PIDS[1]
            zodb_root['x'] = 1

        def test_last(zeo_server, testapp):
            testapp.get('/', status=200)
            with open('server.txt', 'w') as f:
                f.write(f'{zeo_server.pid} {zeo_server.dir}')
    """)
    result = pytester.runpytest_subprocess('-p', 'no:cacheprovider')
    result.assert_outcomes(passed=3)
    pid, directory = (pytester.path / 'server.txt').read_text().split()
    # Stopped (and reaped) at the end of the session, its folder removed.
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
    assert not os.path.exists(directory)


def test_zeostore_ini_option(pytester):
    pytester.makefile('.ini', app=APP_INI)
    pytester.makeini("""
        [pytest]
        zeostore_ini = app.ini
    """)
    pytester.makepyfile(test_app="""
        import pyramid_zeostore

        def test_the_ini_app(app_factory, app_settings, zodb_uri, testapp):
            assert app_factory is pyramid_zeostore.main
            assert app_settings['zodb_uri'] == zodb_uri
            assert app_settings['zeostore.health_path'] == '/@@from-the-ini'
            assert testapp.get('/@@from-the-ini').json['status'] == 'ok'
    """)
    result = pytester.runpytest_subprocess('-p', 'no:cacheprovider')
    result.assert_outcomes(passed=1)
    assert not (pytester.path / 'var').exists()  # not the ini's database


def test_zeostore_ini_missing(pytester):
    pytester.makeini("""
        [pytest]
        zeostore_ini = nowhere.ini
    """)
    pytester.makepyfile(test_app="""
        def test_app(app_settings):
            pass
    """)
    result = pytester.runpytest_subprocess('-p', 'no:cacheprovider')
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(['*zeostore_ini: no such file: *nowhere.ini*'])


def test_the_plugin_can_be_turned_off(pytester):
    pytester.makepyfile(test_off="""
        def test_needs(zeo_server):
            pass
    """)
    result = pytester.runpytest_subprocess(
        '-p', 'no:cacheprovider', '-p', 'no:pyramid_zeostore'
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'zeo_server' not found*"])
