"""The unit suite stays hermetic: no child process, no socket traffic.

A unit test runs in this process on in-memory or temp-dir storages
(MappingStorage, DemoStorage, FileStorage and sqlite files in
``tmp_path``); whatever needs a ``runzeo``, another process or a socket
belongs in ``tests/functional``. While a test of this folder is set up,
runs and is torn down, starting a process (``subprocess.Popen`` and so
``subprocess.run``, ``os.fork``, ``os.posix_spawn``, ``os.system``, the
fork-exec of multiprocessing) or binding, connecting or sending on a
socket (``socket.socket.bind`` / ``connect`` / ``connect_ex`` /
``sendto``) raises an ``AssertionError`` naming the test, in the test's
own thread or in any thread started meanwhile, and the phase fails even
when the code under test caught that error (a ZEO client thread only
logs a failed connection and retries, and the test would pass).

Threads already running when the phase began (e.g. a ZEO client that a
functional test of the same session left behind) are not the test's
doing and are let be. ``socket.socketpair`` (asyncio's self-pipe) is no
traffic and stays allowed. A test may replace one of these functions
with a fake of its own (``monkeypatch.setattr(subprocess, 'run', ...)``).

The guards are installed once, when this file is loaded, and refuse only
while a test of this folder is in one of its phases (hook wrappers round
setup, call and teardown, so that fixtures of a wider scope a unit test
sets up, e.g. the plugin's session-wide ``zeo_server``, are covered too).
The teardown of the session's last test is left out: it also tears down
the session fixtures of functional tests run before it.
"""

from __future__ import annotations

import _posixsubprocess
import functools
import os
import socket
import subprocess
import threading

import pytest

#: the node id of the unit test in a phase, or None
_running: str | None = None
#: the other threads already running when that phase began
_before: frozenset[threading.Thread] = frozenset()
#: what the guards refused during that phase
_refused: list[str] = []

_PROCESS = 'start a process'
_GUARDED = [
    (subprocess.Popen, '_execute_child', 'subprocess.Popen', _PROCESS),
    (_posixsubprocess, 'fork_exec', '_posixsubprocess.fork_exec', _PROCESS),
    (os, 'fork', 'os.fork', _PROCESS),
    (os, 'forkpty', 'os.forkpty', _PROCESS),
    (os, 'posix_spawn', 'os.posix_spawn', _PROCESS),
    (os, 'posix_spawnp', 'os.posix_spawnp', _PROCESS),
    (os, 'system', 'os.system', _PROCESS),
] + [
    (socket.socket, name, f'socket.socket.{name}', 'use a socket')
    for name in ('bind', 'connect', 'connect_ex', 'sendto')
]


def _guard(original, what: str, kind: str):
    @functools.wraps(original)
    def guarded(*args, **kwargs):
        if _running is not None and threading.current_thread() not in _before:
            message = (
                f'{_running}: a unit test must not {kind} ({what}); '
                'move it to tests/functional'
            )
            _refused.append(message)
            raise AssertionError(message)
        return original(*args, **kwargs)

    guarded.__wrapped_by_unit_conftest__ = True
    return guarded


for _owner, _name, _what, _kind in _GUARDED:
    _original = getattr(_owner, _name, None)
    if _original is not None and not hasattr(
        _original, '__wrapped_by_unit_conftest__'
    ):
        setattr(_owner, _name, _guard(_original, _what, _kind))


def _phase(nodeid: str | None):
    global _running, _before
    outer = _running, _before
    _running = nodeid
    _before = frozenset(threading.enumerate()) - {threading.current_thread()}
    return outer


def _restore(outer) -> None:
    global _running, _before
    _running, _before = outer


def _watch(nodeid: str | None):
    """The body of each hook wrapper: guard the phase, then fail it if a
    guard refused something, even if that was caught meanwhile."""
    outer = _phase(nodeid)
    try:
        result = yield
    finally:
        refused = list(_refused)
        _refused.clear()
        _restore(outer)
    if refused:
        more = f' (and {len(refused) - 1} more)' if len(refused) > 1 else ''
        raise AssertionError(refused[0] + more)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _watch(item.nodeid))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _watch(item.nodeid))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    # The last test's teardown also stops the session's fixtures.
    return (yield from _watch(item.nodeid if nextitem is not None else None))
