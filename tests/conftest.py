"""Fixtures shared by the unit and functional suites.

The ZEO helpers live in the pytest plugin :mod:`pyramid_zeostore.testing`
(loaded by its entry point); they are re-exported here for the modules
that import them from ``tests.conftest``. This suite's ``zeo_server`` is
a fresh server for each test (tests stop, kill and restart it), unlike
the plugin's session-wide one; the plugin's other fixtures run on it.
"""

from __future__ import annotations

import pytest

from pyramid_zeostore.testing import (  # noqa: F401 - re-exported
    ZEO_CONF,
    ZEOProcess,
    running_zeo_server,
    write_zeo_conf,
)


@pytest.fixture
def zeo_server(tmp_path):
    """A running ZEO server (``runzeo`` subprocess) for one test."""
    with running_zeo_server(tmp_path / 'zeo') as server:
        yield server


@pytest.fixture
def pyramid_config():
    """A Pyramid configurator in the pyramid_retry test style."""
    from pyramid import testing

    config = testing.setUp(autocommit=False)
    yield config
    testing.tearDown()
