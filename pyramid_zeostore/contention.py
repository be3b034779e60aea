"""Conflicts that do not fail users: backoff, a retry alone, hot spots.

pyramid_retry retries a request that hit a ``ConflictError``; this module
decides how each attempt runs, so that conflicts end in a commit rather
than a 409 or 500. Every retry first sleeps a jittered backoff
(``zeostore.retry_backoff``, ``retry_backoff_max``); a request that
conflicts twice, and the last attempt in any case, *escalates*: it runs
alone on this host (the :class:`HostLock` taken exclusively, which every
write attempt holds shared) and syncs with the ZEO server before it
reads, so it cannot conflict again. Request keys whose requests keep
escalating are *hot* (:class:`HotSpots`) and queue one at a time instead
of stalling every writer. The lock covers the processes of one host that
share ``zeostore.lock_file`` (``false`` in ``zeostore.conflict_lock``
turns it off); across hosts only retry and backoff remain. The tween
that holds the lock is in :mod:`pyramid_zeostore.tweens`; why the second
conflict, not the first, escalates is measured in ``benchmarks/README.md``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import zlib
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterator

from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import ConflictError

from .backoff import pause
from .environ import ESCALATED, EXCLUSIVE, UNAVAILABLE
from .exceptions import DatabaseUnavailable
from .interfaces import IZeostoreSettings

log = logging.getLogger(__name__)

#: From this retry on (1 is the first retry) a conflicted request runs
#: exclusively; the last attempt always does.
EXCLUSIVE_FROM_RETRY = 2

#: A request key whose requests escalated HOT_RATIO of the time, over at
#: least HOT_MIN_REQUESTS requests of one process, is hot for HOT_SECONDS.
HOT_MIN_REQUESTS = 20
HOT_RATIO = 0.25
HOT_SECONDS = 5.0
HOT_KEYS = 256  # keys a process keeps counts for (the least recent go)
OPEN_QUEUES = 32  # queue files a thread keeps open


def _open(path: str) -> int:
    # Group-writable (less the umask): the web processes, pshell and
    # scripts of one deployment share these files through their group.
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)


class _Descriptors:
    """One thread's open lock files; closed when the thread's gone."""

    def __init__(self, gate_path: str, path: str) -> None:
        self.pid = os.getpid()
        self.depth = 0  # lock holds of this thread (nested requests)
        self.fds: tuple[int, ...] = ()
        self.queues: dict[str, int] = {}
        gate = _open(gate_path)
        try:
            main = _open(path)
        except BaseException:
            os.close(gate)
            raise
        self.fds = (gate, main)
        self.gate, self.main = gate, main

    def queue(self, path: str) -> int:
        fd = self.queues.get(path)
        if fd is None:
            if len(self.queues) >= OPEN_QUEUES:
                self._close(self.queues.values())
                self.queues.clear()
            fd = self.queues[path] = _open(path)
        return fd

    @staticmethod
    def _close(fds: Any) -> None:
        for fd in tuple(fds):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        # Also in a forked child: closing its copies leaves the parent's
        # locks alone (they go with the last descriptor, or LOCK_UN).
        self._close(self.fds + tuple(self.queues.values()))


class HostLock:
    """A readers/writer lock shared by the processes and threads of a host.

    Every write attempt holds it shared (a few system calls: writes run
    side by side); an escalated attempt holds it exclusively, so only it
    can commit meanwhile. A gate lock in front (``<path>.gate``) orders
    arrivals, so a waiting exclusive holder is not starved by new shared
    ones; the queue files of hot keys (``<path>.hot-<crc>``) go beside it.

    ``flock`` locks belong to an open file description, so each thread
    opens its own descriptors; the kernel then arbitrates among threads
    and processes alike, and drops the locks of a process that dies.
    Holding is reentrant per thread: a nested hold (a subrequest) while
    the thread holds the lock in either mode just runs.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.gate_path = path + '.gate'
        self._local = threading.local()
        self._unusable_logged = False

    def _descriptors(self) -> _Descriptors:
        fds = getattr(self._local, 'fds', None)
        if fds is None or fds.pid != os.getpid():
            os.makedirs(os.path.dirname(self.path) or '.', exist_ok=True)
            fds = self._local.fds = _Descriptors(self.gate_path, self.path)
        return fds

    @property
    def held(self) -> bool:
        """Does this thread hold the lock (in any mode)?"""
        fds = getattr(self._local, 'fds', None)
        return bool(fds and fds.pid == os.getpid() and fds.depth)

    def queue_path(self, key: Hashable) -> str:
        """The queue (and hot mark) file of request key ``key``: the same
        in every process."""
        return f'{self.path}.hot-{zlib.crc32(repr(key).encode()):08x}'

    def mark(self, key: Hashable, when: float) -> None:
        """Set the mtime of ``key``'s queue file to ``when``."""
        path = self.queue_path(key)
        os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
        os.close(_open(path))
        os.utime(path, (when, when))

    def _unusable(self, exc: OSError) -> None:
        if not self._unusable_logged:
            self._unusable_logged = True
            log.error(
                'cannot open the host lock file %s (%s): writes run without '
                'it (conflicts are still retried, but a request that keeps '
                'conflicting no longer runs alone and hot spots are not '
                'queued). Set zeostore.lock_file to a file that every web '
                'process, pshell and script of this host can create and '
                'write, e.g. /run/myapp/zeostore.lock', self.path, exc,
            )

    @contextlib.contextmanager
    def _hold(self, mode: int, queue: str | None = None) -> Iterator[None]:
        try:
            fds = self._descriptors()
        except OSError as exc:
            # No lock, rather than no writes: ZODB still detects conflicts.
            self._unusable(exc)
            yield
            return
        if fds.depth:
            fds.depth += 1
            try:
                yield
            finally:
                fds.depth -= 1
            return
        queue_fd = None
        if queue is not None:
            queue_fd = fds.queue(queue)
            fcntl.flock(queue_fd, fcntl.LOCK_EX)
        try:
            # The gate orders arrivals: an exclusive waiter holds it until
            # it has the main lock, so no new shared holder slips in first.
            fcntl.flock(fds.gate, fcntl.LOCK_EX)
            try:
                fcntl.flock(fds.main, mode)
            finally:
                fcntl.flock(fds.gate, fcntl.LOCK_UN)
            fds.depth = 1
            try:
                yield
            finally:
                fds.depth = 0
                fcntl.flock(fds.main, fcntl.LOCK_UN)
        finally:
            if queue_fd is not None:
                fcntl.flock(queue_fd, fcntl.LOCK_UN)

    def shared(self) -> contextlib.AbstractContextManager[None]:
        """Held by ordinary writes: many at once, none under an exclusive."""
        return self._hold(fcntl.LOCK_SH)

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Held by an escalated attempt: waits for running writers, holds
        off new ones."""
        return self._hold(fcntl.LOCK_EX)

    def queued(self, queue: str) -> contextlib.AbstractContextManager[None]:
        """Shared, and one at a time among the holders of ``queue`` (a
        :meth:`queue_path`): for the requests of a hot spot."""
        return self._hold(fcntl.LOCK_SH, queue)


class HotSpots:
    """Which request keys keep conflicting: counted per process, marked
    hot for the host.

    Counts, per key, the requests that started normally and those of them
    that escalated. When at least ``HOT_RATIO`` of at least
    ``HOT_MIN_REQUESTS`` escalated, the key's queue file is touched: for
    ``HOT_SECONDS`` from its mtime, the key is hot in every process of
    the host. Counts start afresh then, and fade (both halve past
    ``4 * HOT_MIN_REQUESTS``); only the ``HOT_KEYS`` most recent keys are
    kept.
    """

    def __init__(
        self,
        lock: HostLock,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lock = lock
        self.clock = clock  # wall clock: compared with file mtimes
        self._mutex = threading.Lock()
        self._keys: OrderedDict[Hashable, list[float]] = OrderedDict()

    def _stats(self, key: Hashable) -> list[float]:
        stats = self._keys.get(key)
        if stats is None:
            # started, escalated, hot until (as far as this process knows)
            stats = self._keys[key] = [0.0, 0.0, 0.0]
            if len(self._keys) > HOT_KEYS:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        return stats

    def started(self, key: Hashable) -> str | None:
        """A request for ``key`` starts: its queue file if the key is hot,
        else ``None`` (and the request is counted)."""
        now = self.clock()
        with self._mutex:
            stats = self._stats(key)
            if stats[2] > now:
                return self.lock.queue_path(key)
        path = self.lock.queue_path(key)
        try:
            marked = os.stat(path).st_mtime
        except OSError:
            marked = None
        with self._mutex:
            stats = self._stats(key)
            if marked is not None and marked <= now < marked + HOT_SECONDS:
                stats[:] = [0.0, 0.0, marked + HOT_SECONDS]
                return path
            stats[0] += 1
            if stats[0] > 4 * HOT_MIN_REQUESTS:
                stats[0] /= 2
                stats[1] /= 2
        return None

    def escalated(self, key: Hashable) -> None:
        """A request for ``key`` that started normally conflicted twice."""
        with self._mutex:
            stats = self._keys.get(key)
            if stats is None:  # forgotten meanwhile
                return
            stats[1] += 1
            if not (
                stats[0] >= HOT_MIN_REQUESTS
                and stats[1] >= HOT_RATIO * stats[0]
            ):
                return
            now = self.clock()
            stats[:] = [0.0, 0.0, now + HOT_SECONDS]
        with contextlib.suppress(OSError):  # then only this process knows
            self.lock.mark(key, now)

    def is_hot(self, key: Hashable) -> bool:
        """Does this process know ``key`` to be hot now?"""
        with self._mutex:
            stats = self._keys.get(key)
            return stats is not None and stats[2] > self.clock()


def runs_exclusive(retry: int, attempts: int) -> bool:
    """Does retry number ``retry`` (1: the first) of ``attempts`` attempts
    in all run exclusively? From the second retry on, and the last."""
    return retry >= EXCLUSIVE_FROM_RETRY or retry + 1 >= attempts


def before_retry(request: Any, exc: BaseException) -> None:
    """An attempt ended in ``exc``, which pyramid_retry will retry: mark
    the environ, then back off.

    Called by the read tween (the outermost of this package's tweens),
    not through an ``IBeforeRetry`` subscriber: any subscriber makes
    Pyramid send four events on every request. After a
    ``ClientDisconnected`` / ``DatabaseUnavailable`` it only marks the
    environ (the next attempt does not wait for ZEO again). After a
    ``ConflictError`` it sleeps the backoff and, per
    :func:`runs_exclusive`, asks for an exclusive, synced next attempt; a
    second conflict is counted towards the key's hotness.
    """
    environ = request.environ
    if isinstance(exc, (ClientDisconnected, DatabaseUnavailable)):
        environ[UNAVAILABLE] = True
        return
    if not isinstance(exc, ConflictError):
        return
    settings = request.registry.getUtility(IZeostoreSettings)
    retry = environ.get('retry.attempt', 0) + 1
    attempts = environ.get('retry.attempts', settings.retry_attempts)
    if settings.conflict_lock and runs_exclusive(retry, attempts):
        environ[EXCLUSIVE] = True
        escalated = environ.get(ESCALATED)
        if retry == EXCLUSIVE_FROM_RETRY and escalated is not None:
            escalated()
    pause(retry, settings.retry_backoff, settings.retry_backoff_max)
