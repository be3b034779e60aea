"""Fixtures shared by the unit and functional suites.

The ZEO helpers live in the pytest plugin :mod:`pyramid_zeostore.testing`
(loaded by its entry point); they are re-exported here for the modules
that import them from ``tests.conftest``. This suite's ``zeo_server`` is
a fresh server for each test (tests stop, kill and restart it), unlike
the plugin's session-wide one; the plugin's other fixtures run on it.
``zeo_conf`` is that server's zeo.conf, read but not started (the unit
and the functional tests of :mod:`pyramid_zeostore.zeoserver`);
``watched_flock`` lets the host-lock tests (unit and functional
test_contention.py) see, without timing, that a lock attempt blocks.
"""

from __future__ import annotations

import fcntl
import threading

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
def zeo_conf(tmp_path):
    """The :class:`~pyramid_zeostore.zeoserver.ZEOConf` of a recipe-shaped
    zeo.conf (:func:`write_zeo_conf`) in ``tmp_path/var``; nothing runs."""
    from pyramid_zeostore import zeoserver

    return zeoserver.read_zeo_conf(write_zeo_conf(tmp_path / 'var'))


@pytest.fixture
def watched_flock(monkeypatch):
    """``fcntl.flock`` for threads that want to know when they block.

    In a thread with a ``met_a_held_lock()`` method (test_contention's
    ``Holder``), a blocking lock attempt is first made with ``LOCK_NB``;
    if the kernel refuses it (the lock is held through another open file
    description), the thread calls ``met_a_held_lock()`` and then waits
    for the lock as it asked. Other threads, non-blocking attempts and
    unlocks go straight through: the lock itself behaves the same.
    """
    real = fcntl.flock

    def flock(fd, operation):
        met = getattr(threading.current_thread(), 'met_a_held_lock', None)
        if met is None or operation & (fcntl.LOCK_NB | fcntl.LOCK_UN):
            return real(fd, operation)
        try:
            return real(fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            met()
        return real(fd, operation)

    flock.watched = True
    monkeypatch.setattr(fcntl, 'flock', flock)


@pytest.fixture
def pyramid_config():
    """A Pyramid configurator in the pyramid_retry test style."""
    from pyramid import testing

    config = testing.setUp(autocommit=False)
    yield config
    testing.tearDown()
