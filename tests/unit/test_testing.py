"""The pytest plugin (:mod:`pyramid_zeostore.testing`) without a server.

What of the plugin needs no ZEO server: ``app_factory`` is the ready app
when no ``zeostore_ini`` is set, ``load_ini_app`` splits an ini into its
app factory, global conf and settings (a named section; a missing file
and a pipeline refused as usage errors), and a :class:`ZEOProcess` not
started has no pid, nothing to stop and a bounded log. The fixtures on
the plugin's session-wide ``runzeo`` (``zodb_uri``, ``testapp``,
``dummy_request``, the ini app) and ``ZEOProcess`` started and stopped
are in tests/functional/test_testing.py; tests/functional/test_plugin.py
runs the plugin in pytest sessions of their own.
"""

from __future__ import annotations

import pytest

import pyramid_zeostore
from pyramid_zeostore import testing

# -- app_factory --------------------------------------------------------------


def test_app_factory_is_the_ready_app(app_factory):
    assert app_factory is pyramid_zeostore.main


# -- ini ----------------------------------------------------------------------

INI = """\
[app:main]
use = egg:pyramid_zeostore
zodb_uri = file://%(here)s/var/Data.fs
zodb_uri.other = file://%(here)s/var/Other.fs
zodbconn.uri.third = memory://
zeostore.autostart = true
zeostore.zeo_conf = %(here)s/zeo.conf
zeostore.check_on_startup = true
zeostore.health_path = /@@ini-health

[app:second]
use = egg:pyramid_zeostore
zodbconn.uri = file://%(here)s/var/Data.fs

[pipeline:piped]
pipeline = second
"""


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / 'app.ini'
    path.write_text(INI)
    return path


def test_load_ini_app_names_a_section(ini):
    factory, global_conf, settings = testing.load_ini_app(
        f'{ini}#second', '/elsewhere'
    )
    assert factory is pyramid_zeostore.main
    assert global_conf['here'] == str(ini.parent)
    assert settings == {
        'zodbconn.uri': f'file://{ini.parent}/var/Data.fs'
    }


def test_load_ini_app_refuses_what_it_cannot_split(ini, tmp_path):
    with pytest.raises(pytest.UsageError, match='no such file'):
        testing.load_ini_app('missing.ini', str(tmp_path))
    with pytest.raises(
        pytest.UsageError, match=r'\[piped\] .* is a pipeline, not an app'
    ):
        testing.load_ini_app(f'{ini.name}#piped', str(tmp_path))


# -- helpers ------------------------------------------------------------------


def test_zeo_process_not_started(tmp_path):
    server = testing.ZEOProcess(tmp_path / 'z')
    assert server.pid is None
    server.stop()  # nothing to stop
    assert server.log() == '(no log)'
    (tmp_path / 'z' / 'zeo.log').write_text('x' * 5000 + 'the end')
    log = server.log()
    assert len(log) == 4000 and log.endswith('the end')
