"""Unknown setting keys: a typo is refused (ours) or warned about (theirs)."""

from __future__ import annotations

import logging

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

from pyramid_zeostore import main
from pyramid_zeostore.exceptions import ZeostoreConfigurationError
from pyramid_zeostore.settings import check_keys, known_keys


def include(**settings):
    config = Configurator(settings={'zodb_uri': 'memory://', **settings})
    config.include('pyramid_zeostore')
    return config.make_wsgi_app()


def refused(call, *args, **kw) -> ZeostoreConfigurationError:
    """The key error, whether raised as it is or inside Pyramid's
    ConfigurationExecutionError (the check is a configuration action)."""
    with pytest.raises(ConfigurationError) as info:
        call(*args, **kw)
    error = getattr(info.value, 'evalue', info.value)
    assert isinstance(error, ZeostoreConfigurationError), info.value
    assert error.key in str(info.value)  # what pserve prints names it
    return error


@pytest.mark.parametrize('typo, meant', [
    ('zeostore.conect_timeout', 'zeostore.connect_timeout'),
    ('zeostore.autostrat', 'zeostore.autostart'),
    ('zeostore.healthpath', 'zeostore.health_path'),
    ('zeostore.fast_read', 'zeostore.fast_reads'),
])
def test_a_typo_names_the_closest_key(typo, meant):
    error = refused(include, **{typo: '1'})
    assert error.key == typo
    assert f'did you mean {meant}?' in str(error)


def test_a_key_like_no_other_points_at_the_table():
    error = refused(include, **{'zeostore.xyzzy': '1'})
    assert "see the README's settings table" in str(error)


def test_the_ready_app_knows_its_own_keys_and_refuses_typos(tmp_path):
    app = main({}, zodb_uri='memory://', **{
        'zeostore.check_on_startup': 'false',
        'zeostore.max_body': '1MB', 'zeostore.anonymous': 'read',
    })
    assert callable(app)
    # The ready app raises the key's own error (pserve's last line), not
    # Pyramid's wrapper of an action's ("<class ...>: ... in: Line 0").
    with pytest.raises(ZeostoreConfigurationError) as info:
        main({}, zodb_uri='memory://', **{
            'zeostore.check_on_startup': 'false', 'zeostore.max_bdy': '1MB',
        })
    assert str(info.value).startswith('zeostore.max_bdy: ')
    assert 'did you mean zeostore.max_body?' in str(info.value)


def test_an_app_key_without_the_ready_app_is_unknown():
    """Only the ready app reads zeostore.secret: an app of one's own that
    sets it would believe sessions are signed with it."""
    error = refused(include, **{'zeostore.secret': 'x' * 40})
    assert error.key == 'zeostore.secret'


def test_other_packages_keys_get_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        include(**{'retry.atempts': '3', 'tm.annotate_user': 'false'})
    assert 'unknown setting retry.atempts' in caplog.text
    assert 'did you mean retry.attempts?' in caplog.text
    assert 'tm.annotate_user' not in caplog.text


def test_known_keys_pass_and_non_strings_are_ignored():
    settings = {key: '1' for key in known_keys()}
    settings[42] = 'x'  # a mapping may hold anything
    check_keys(settings, known_keys())


def test_a_refused_ini_starts_no_runzeo(tmp_path, monkeypatch):
    """The key check runs before autostart (an earlier action order)."""
    import pyramid_zeostore

    started = []
    monkeypatch.setattr(pyramid_zeostore, '_autostart', started.append)
    conf = tmp_path / 'zeo.conf'
    conf.write_text('')
    refused(include, **{'zeostore.autostart': 'true',
                        'zeostore.zeo_conf': str(conf),
                        'zeostore.conect_timeout': '1'})
    assert started == []
