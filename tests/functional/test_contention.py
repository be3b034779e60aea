"""The host lock between processes (pyramid_zeostore.contention.HostLock).

A child process (``python -c``) takes the lock shared or exclusively and
says so on its stdout; a :class:`~tests.unit.test_contention.Holder`
thread of this process then must get in beside a shared holder, wait for
it to take the lock exclusively, or wait under its exclusive hold. That
it waits is known, not guessed: the ``watched_flock`` fixture tells when
its attempt met the child's lock, and it gets in only once the child let
go. The queue file of a hot key is named alike in every process (a
child with another hash seed). Every wait is bounded; each child is
stopped by its pid. The lock between threads is in
tests/unit/test_contention.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import zlib

import pytest

from pyramid_zeostore.contention import HostLock
from tests.unit.test_contention import (
    WAIT,
    Holder,
    free,
    held_exclusive,
    held_shared,
)

pytestmark = pytest.mark.usefixtures('watched_flock')


@pytest.fixture
def lock(tmp_path):
    return HostLock(str(tmp_path / 'sub' / 'zeo.sock.lock'))


CHILD = textwrap.dedent(
    """
    import sys
    from pyramid_zeostore.contention import HostLock
    lock = HostLock(sys.argv[1])
    with getattr(lock, sys.argv[2])():
        print('held', flush=True)
        sys.stdin.readline()
    print('released', flush=True)
    """
)


class ChildHolder:
    """Another process holding the lock until told to let go.

    It says ``held`` once it holds the lock and ``released`` once it let
    go, a line each on its stdout; a reader thread sets the event of each
    line, which the test waits for (bounded).
    """

    def __init__(self, path, mode):
        self.proc = subprocess.Popen(
            [sys.executable, '-c', CHILD, path, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.said = {'held': threading.Event(), 'released': threading.Event()}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.lines = []
        self.reader.start()
        assert self.said['held'].wait(WAIT), self.lines

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())
            if line.strip() in self.said:
                self.said[line.strip()].set()

    def release(self):
        self.proc.stdin.write('\n')
        self.proc.stdin.flush()
        assert self.said['released'].wait(WAIT), self.lines
        self.stop()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        self.reader.join(WAIT)


@pytest.fixture
def children():
    started = []

    def start(path, mode):
        child = ChildHolder(path, mode)
        started.append(child)
        return child

    yield start
    for child in started:
        child.stop()


def test_shared_holders_coexist_across_processes(lock, children):
    child = children(lock.path, 'shared')
    mine = Holder(lock.shared)
    mine.start()
    assert mine.acquired.wait(WAIT), 'shared blocked by a shared holder'
    assert held_shared(lock.path)
    child.release()
    mine.finish()
    assert free(lock.path)


def test_exclusive_waits_for_a_shared_holder_of_another_process(
    lock, children
):
    child = children(lock.path, 'shared')
    mine = Holder(lock.exclusive)
    mine.waits_for(child.release)
    assert held_exclusive(lock.path)
    mine.finish()


def test_exclusive_of_another_process_holds_off_shared(lock, children):
    child = children(lock.path, 'exclusive')
    mine = Holder(lock.shared)
    mine.waits_for(child.release)
    mine.finish()


def test_queue_files_are_the_same_in_every_process(lock):
    key = ('POST', '/counter/@@increment')
    path = lock.queue_path(key)
    assert path == lock.path + '.hot-%08x' % zlib.crc32(repr(key).encode())
    out = subprocess.run(
        [sys.executable, '-c',
         'from pyramid_zeostore.contention import HostLock; '
         f'print(HostLock({lock.path!r}).queue_path({key!r}))'],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONHASHSEED='123'),
    )
    assert out.stdout.strip() == path
