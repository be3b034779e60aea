"""Conflicts that do not fail users: backoff, and a lock only for retries.

A write that hits a ``ConflictError`` is retried by pyramid_retry. Before
the retry we sleep a short jittered, exponential backoff and mark the
environ; the retry then runs *alone on this host*: it takes a host-wide
lock exclusively (``flock`` on a file beside the ZEO socket) and syncs
with the ZEO server before it reads, so it sees the latest state and no
other writer of this host can commit under it. First attempts take the
same lock *shared*, so they run side by side and pay only a few system
calls: low-conflict writes keep their throughput, and a hot spot turns
into a queue instead of a storm of 409s.

A gate lock in front of the shared lock keeps a waiting retry from being
starved by a stream of new first attempts. Only unsafe methods (POST,
PUT, PATCH, DELETE) take part; reads never wait. The lock covers one
host: across hosts, retry and backoff remain.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
import time
from typing import Any, Callable, Iterator

from ZODB.POSException import ConflictError
from ZEO.Exceptions import ClientDisconnected

from .connection import EXCLUSIVE, UNAVAILABLE
from .exceptions import DatabaseUnavailable

SAFE_METHODS = frozenset({'GET', 'HEAD', 'OPTIONS', 'TRACE'})


class HostLock:
    """A readers/writer lock shared by the processes and threads of a host.

    ``flock`` locks belong to an open file description, so each thread
    opens its own descriptors; the kernel then arbitrates among threads
    and processes alike, and releases them if a process dies.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.gate_path = path + '.gate'
        self._local = threading.local()

    def _fds(self) -> tuple[int, int]:
        fds = getattr(self._local, 'fds', None)
        if fds is None or self._local.pid != os.getpid():
            os.makedirs(os.path.dirname(self.path) or '.', exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
            fds = (
                os.open(self.gate_path, flags, 0o600),
                os.open(self.path, flags, 0o600),
            )
            self._local.fds = fds
            self._local.pid = os.getpid()
        return fds

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Held by first attempts: many at once, none under a retry."""
        gate, main = self._fds()
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(main, fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(main, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held by a retry: waits for running writers, holds off new ones."""
        gate, main = self._fds()
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(main, fcntl.LOCK_EX)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(main, fcntl.LOCK_UN)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to sleep before retry ``attempt`` (1 is the first retry)."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def before_retry_subscriber(event: Any) -> None:
    """``pyramid_retry.IBeforeRetry``: mark the environ, then back off."""
    from ._core_interfaces import IZeostoreSettings

    environ = event.environ
    exc = event.exception
    if isinstance(exc, (ClientDisconnected, DatabaseUnavailable)):
        environ[UNAVAILABLE] = True
        return
    if not isinstance(exc, ConflictError):
        return
    settings = event.request.registry.getUtility(IZeostoreSettings)
    if settings.conflict_lock:
        environ[EXCLUSIVE] = True
    attempt = environ.get('retry.attempt', 0) + 1
    time.sleep(
        backoff(attempt, settings.retry_backoff, settings.retry_backoff_max)
    )


def contention_tween_factory(
    handler: Callable[[Any], Any], registry: Any
) -> Callable[[Any], Any]:
    """A tween over pyramid_tm that holds the host lock around writes."""
    from ._core_interfaces import IZeostoreSettings

    settings = registry.getUtility(IZeostoreSettings)
    if not settings.conflict_lock:
        return handler
    lock = HostLock(settings.lock_file)

    def contention_tween(request: Any) -> Any:
        if request.method in SAFE_METHODS:
            return handler(request)
        if request.environ.get(EXCLUSIVE):
            held = lock.exclusive()
        else:
            held = lock.shared()
        with held:
            return handler(request)

    return contention_tween
