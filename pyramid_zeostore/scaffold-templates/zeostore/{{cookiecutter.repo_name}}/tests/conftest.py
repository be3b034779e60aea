"""The fixtures come from pyramid_zeostore's pytest plugin; see README.md.

``zeostore_ini = "development.ini"`` (pyproject.toml) makes ``testapp``
and ``dummy_request`` run this app with that ini's settings, on a
database of each test's own. Add a fixture here to change a setting::

    @pytest.fixture
    def app_settings(app_settings):
        app_settings['pyramid.reload_templates'] = 'false'
        return app_settings
"""

import pytest


@pytest.fixture
def site(zodb_root, wsgi_app):
    """The app root (a Site) on the test's own connection."""
    return zodb_root['app_root']
