"""The ini files: valid settings, and the database URI of the backend
resolves (its storage is installed)."""

import os

import pytest
from pyramid.paster import get_appsettings
from pyramid_zeostore import parse_settings

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
{% if cookiecutter.backend == 'zeo' %}
SCHEME = 'zeo://'
DEVELOPMENT_AUTOSTART = True
{%- elif cookiecutter.backend == 'file' %}
SCHEME = 'file://'
DEVELOPMENT_AUTOSTART = False
{%- else %}
SCHEME = 'sqlite://'
DEVELOPMENT_AUTOSTART = False
{%- endif %}


@pytest.mark.parametrize('ini', ['development.ini', 'production.ini'])
def test_ini_settings_are_valid(ini):
    settings = parse_settings(get_appsettings(os.path.join(HERE, ini)))
    assert settings.primary.uri.startswith(SCHEME)
    assert settings.autostart is (
        ini == 'development.ini' and DEVELOPMENT_AUTOSTART
    )
