"""The host lock, hot spots, backoff, the retry policy and the contention
tween (pyramid_zeostore.contention, .backoff, .tweens), in one process.

HostLock between the threads of this process: shared holders side by
side, an exclusive one alone, a waiting exclusive not starved by new
shared ones (the gate), hot-key queues one at a time, reentrance, the
descriptors of each thread; then how hot spots are counted and marked,
the backoff and the retry policy before a retry, and the tween with
pyramid_tm and pyramid_retry around it. The lock between processes is
in tests/functional/test_contention.py.

No wait is a guess: a lock attempt that must block runs in a
:class:`Holder` thread under the ``watched_flock`` fixture, which tells
when the attempt met a lock held elsewhere (the kernel refused it
without blocking) right before it waits for it; non-blocking probes from
open file descriptions of their own then check who holds what. Every
wait is bounded (``WAIT``) and every helper thread is joined with it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from types import SimpleNamespace

import pytest
from pyramid.registry import Registry
from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import ConflictError, ReadConflictError

from pyramid_zeostore import backoff as backoff_module
from pyramid_zeostore import contention
from pyramid_zeostore.backoff import backoff
from pyramid_zeostore.contention import (
    HOT_KEYS,
    HOT_MIN_REQUESTS,
    HOT_SECONDS,
    OPEN_QUEUES,
    HostLock,
    HotSpots,
    before_retry,
    runs_exclusive,
)
from pyramid_zeostore.environ import ESCALATED, EXCLUSIVE, HOT, UNAVAILABLE
from pyramid_zeostore.exceptions import DatabaseUnavailable
from pyramid_zeostore.interfaces import IZeostoreSettings
from pyramid_zeostore.settings import ZeostoreSettings
from pyramid_zeostore.tweens import contention_tween_factory

WAIT = 10.0  # seconds: the most any step may take before the test fails

pytestmark = pytest.mark.usefixtures('watched_flock')


# -- probes ---------------------------------------------------------------


def can_lock(path: str, mode: int) -> bool:
    """Could a newcomer take ``path`` in ``mode`` right now?"""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also drops the probe's lock
    return True


def held_shared(path):
    return not can_lock(path, fcntl.LOCK_EX) and can_lock(
        path, fcntl.LOCK_SH
    )


def held_exclusive(path):
    return not can_lock(path, fcntl.LOCK_SH)


def free(path):
    return can_lock(path, fcntl.LOCK_EX)


def lock_state(path):
    if held_exclusive(path):
        return 'exclusive'
    return 'shared' if held_shared(path) else 'none'


class Holder(threading.Thread):
    """Holds ``context()`` in a thread until ``release`` is set.

    Under the ``watched_flock`` fixture (tests/conftest.py) it knows when
    it blocks: each lock attempt of its own that meets a lock held
    through another open file description is counted right before the
    thread waits in ``flock`` for it; :meth:`blocked` waits for that.
    """

    def __init__(self, context, log=None, name=''):
        assert getattr(fcntl.flock, 'watched', False), 'use watched_flock'
        super().__init__(daemon=True)
        self.context = context
        self.acquired = threading.Event()
        self.release = threading.Event()
        self.log = log if log is not None else []
        self.label = name
        self.blocks = 0
        self.changed = threading.Condition()

    def run(self):
        with self.context():
            self.log.append(self.label)
            self.acquired.set()
            with self.changed:
                self.changed.notify_all()
            self.release.wait(WAIT)

    def met_a_held_lock(self):
        """Called by ``watched_flock``, in this thread, right before it
        waits for a lock held elsewhere."""
        with self.changed:
            self.blocks += 1
            self.changed.notify_all()

    def blocked(self, times: int = 1) -> bool:
        """Does it wait for a held lock (the ``times``-th it met) and hold
        nothing yet? Waits for that at most ``WAIT``; False at once if it
        got in without waiting."""
        with self.changed:
            self.changed.wait_for(
                lambda: self.blocks >= times or self.acquired.is_set(), WAIT
            )
            return self.blocks >= times and not self.acquired.is_set()

    def finish(self):
        self.release.set()
        self.join(WAIT)
        assert not self.is_alive()

    def waits_for(self, release) -> None:
        """Start; assert it waits for a held lock until ``release()`` lets
        it in."""
        self.start()
        assert self.blocked(), 'it did not wait for a held lock'
        release()
        assert self.acquired.wait(WAIT)


@pytest.fixture
def lock(tmp_path):
    return HostLock(str(tmp_path / 'sub' / 'zeo.sock.lock'))


# -- HostLock ---------------------------------------------------------------


def test_lock_files_are_made_beside_the_path(lock):
    with lock.shared():
        assert os.path.isfile(lock.path)
        assert os.path.isfile(lock.path + '.gate')
        assert held_shared(lock.path)
        assert free(lock.gate_path)  # the gate is only held to get in
    assert free(lock.path)


def test_shared_holders_coexist_across_threads(lock):
    both_in = threading.Barrier(3, timeout=WAIT)

    def hold():
        with lock.shared():
            both_in.wait()  # breaks unless both threads hold at once
            both_in.wait()

    threads = [threading.Thread(target=hold, daemon=True) for _ in '12']
    for t in threads:
        t.start()
    both_in.wait()
    assert held_shared(lock.path)
    both_in.wait()
    for t in threads:
        t.join(WAIT)
    assert free(lock.path)


def test_exclusive_excludes_threads_of_one_process(lock):
    first = Holder(lock.exclusive)
    first.start()
    assert first.acquired.wait(WAIT)
    others = [Holder(lock.exclusive), Holder(lock.shared)]
    for other in others:
        other.start()
    for other in others:
        assert other.blocked()
    assert held_exclusive(lock.path)  # still the first's only
    first.finish()
    for other in others:
        other.release.set()  # each lets go as soon as it has the lock
    for other in others:
        assert other.acquired.wait(WAIT)
        other.finish()
    assert free(lock.path)


def test_a_waiting_exclusive_is_not_starved_by_new_shared(lock):
    log = []
    reader = Holder(lock.shared, log, 'first shared')
    reader.start()
    assert reader.acquired.wait(WAIT)

    writer = Holder(lock.exclusive, log, 'exclusive')
    writer.start()
    # The writer waits for the main lock holding the gate ...
    assert writer.blocked()
    assert not can_lock(lock.gate_path, fcntl.LOCK_EX)
    late = Holder(lock.shared, log, 'late shared')
    late.start()
    # ... so a newcomer cannot join the running shared holder.
    assert late.blocked()  # at the gate
    assert not writer.acquired.is_set()
    assert not can_lock(lock.path, fcntl.LOCK_EX)  # the first reader's

    reader.finish()
    assert writer.acquired.wait(WAIT)
    assert late.blocked(2)  # past the gate: not under the exclusive
    assert held_exclusive(lock.path)
    writer.finish()
    assert late.acquired.wait(WAIT)
    late.finish()
    assert log == ['first shared', 'exclusive', 'late shared']


def test_holding_is_reentrant_per_thread(lock):
    with lock.exclusive():
        with lock.shared():  # a subrequest: no deadlock, no downgrade
            with lock.exclusive():
                assert held_exclusive(lock.path)
        assert held_exclusive(lock.path)
    assert free(lock.path)
    with lock.shared():
        with lock.exclusive():  # runs within the outer shared hold
            assert held_shared(lock.path)
        assert held_shared(lock.path)
    assert free(lock.path)


def test_queued_holders_of_one_queue_take_turns(lock):
    counter = lock.queue_path(('POST', '/counter'))
    first = Holder(lambda: lock.queued(counter))
    first.start()
    assert first.acquired.wait(WAIT)
    assert held_shared(lock.path)  # queued holders hold the main lock shared
    assert not can_lock(counter, fcntl.LOCK_EX)
    same = Holder(lambda: lock.queued(counter))
    other = Holder(lambda: lock.queued(lock.queue_path(('POST', '/x'))))
    plain = Holder(lock.shared)
    for h in (same, other, plain):
        h.start()
    assert other.acquired.wait(WAIT)
    assert plain.acquired.wait(WAIT)
    assert same.blocked()
    assert not can_lock(counter, fcntl.LOCK_EX)  # still the first's
    first.finish()
    assert same.acquired.wait(WAIT)
    for h in (same, other, plain):
        h.finish()
    assert free(lock.path) and free(counter)


def test_queued_waits_for_an_exclusive(lock):
    writer = Holder(lock.exclusive)
    writer.start()
    assert writer.acquired.wait(WAIT)
    queued = Holder(lambda: lock.queued(lock.queue_path('k')))
    queued.waits_for(writer.finish)
    queued.finish()


def test_queued_releases_its_queue_when_the_main_lock_fails(lock):
    fds = lock._descriptors()
    main, fds.main = fds.main, 2**20  # not open: flock on it fails
    queue = lock.queue_path('k')
    try:
        with pytest.raises(OSError):
            with lock.queued(queue):
                pass  # pragma: no cover
        assert free(queue) and free(lock.gate_path)
    finally:
        fds.main = main
    with lock.queued(queue):
        assert held_shared(lock.path)


def test_a_thread_keeps_few_queue_files_open(lock):
    fds = lock._descriptors()
    opened = [fds.queue(lock.queue_path(i)) for i in range(OPEN_QUEUES)]
    assert len(fds.queues) == OPEN_QUEUES
    fds.queue(lock.queue_path('one more'))
    assert len(fds.queues) == 1
    for fd in opened:
        if fd not in fds.queues.values():
            with pytest.raises(OSError):
                os.fstat(fd)


def test_held_tells_whether_this_thread_holds_the_lock(lock):
    assert not lock.held
    with lock.shared():
        assert lock.held
        seen = []
        t = threading.Thread(target=lambda: seen.append(lock.held))
        t.start()
        t.join(WAIT)
        assert seen == [False]
    assert not lock.held


def test_release_on_error(lock):
    with pytest.raises(RuntimeError):
        with lock.exclusive():
            raise RuntimeError('view failed')
    assert free(lock.path)
    assert free(lock.gate_path)


def test_each_thread_and_each_process_opens_its_own_files(lock):
    with lock.shared():
        pass
    mine = lock._local.fds
    assert lock._descriptors() is mine
    seen = []
    t = threading.Thread(target=lambda: seen.append(lock._descriptors()))
    t.start()
    t.join(WAIT)
    assert seen[0] is not mine and seen[0].main != mine.main
    mine.pid = -1  # as in a child forked after this thread used the lock
    assert lock._descriptors() is not mine
    with lock.exclusive():
        assert held_exclusive(lock.path)


def test_descriptors_are_closed_when_dropped(lock):
    with lock.queued(lock.queue_path('k')):
        pass
    fds = lock._descriptors()
    gate, main = fds.gate, fds.main
    (stripe,) = fds.queues.values()
    del lock._local.fds, fds
    for fd in (gate, main, stripe):
        with pytest.raises(OSError):
            os.fstat(fd)


def test_a_failed_open_leaks_no_descriptor(tmp_path):
    path = tmp_path / 'lock'
    path.mkdir()  # the main lock file cannot be opened read-write
    before = set(os.listdir('/proc/self/fd'))
    with HostLock(str(path)).shared():  # unlocked, logged (below)
        pass
    assert set(os.listdir('/proc/self/fd')) <= before


# -- backoff and the retry policy --------------------------------------------


def test_backoff_doubles_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(backoff_module.random, 'uniform', lambda a, b: (a, b))
    assert backoff(1, 0.005, 0.2) == (0, 0.005)
    assert backoff(2, 0.005, 0.2) == (0, 0.01)
    assert backoff(3, 0.005, 0.2) == (0, 0.02)
    assert backoff(7, 0.005, 0.2) == (0, 0.2)
    assert backoff(60, 0.005, 0.2) == (0, 0.2)
    assert backoff(3, 0.0, 0.0) == (0, 0.0)


def test_backoff_is_jittered_within_its_bounds():
    for attempt in range(1, 12):
        high = min(0.2, 0.005 * 2 ** (attempt - 1))
        samples = [backoff(attempt, 0.005, 0.2) for _ in range(200)]
        assert all(0 <= s <= high for s in samples)
        assert len(set(samples)) > 100  # jittered, not a constant


@pytest.mark.parametrize(
    'retry, attempts, exclusive',
    [
        (1, 3, False),  # the first retry runs shared ...
        (2, 3, True),  # ... the second (and last) alone
        (1, 2, True),  # the last attempt always runs alone
        (1, 5, False),
        (2, 5, True),
        (4, 5, True),
    ],
)
def test_runs_exclusive(retry, attempts, exclusive):
    assert runs_exclusive(retry, attempts) is exclusive


# -- hot spots ---------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


def spots_for(lock, clock=None):
    return HotSpots(lock, clock or Clock())


def turn_hot(spots, key):
    for _ in range(HOT_MIN_REQUESTS):
        assert spots.started(key) is None
    for _ in range(HOT_MIN_REQUESTS // 4):
        spots.escalated(key)


def test_a_key_turns_hot_when_a_quarter_escalate(lock):
    clock = Clock()
    spots = spots_for(lock, clock)
    for _ in range(HOT_MIN_REQUESTS):
        assert spots.started('counter') is None
    for _ in range(HOT_MIN_REQUESTS // 4 - 1):
        spots.escalated('counter')
    assert not spots.is_hot('counter')
    spots.escalated('counter')
    assert spots.is_hot('counter')
    queue = lock.queue_path('counter')
    assert spots.started('counter') == queue
    assert os.stat(queue).st_mtime == pytest.approx(clock.now)
    assert not spots.is_hot('adds') and spots.started('adds') is None
    clock.now += HOT_SECONDS - 0.1
    assert spots.started('counter') == queue
    clock.now += 0.2
    assert spots.started('counter') is None  # cold again, counts afresh
    spots.escalated('counter')
    assert not spots.is_hot('counter')  # 1 of 1, but too few requests


def test_a_hot_key_is_hot_in_every_process_of_the_host(lock):
    clock = Clock()
    here, there = spots_for(lock, clock), spots_for(HostLock(lock.path), clock)
    assert there.started('counter') is None
    turn_hot(here, 'counter')
    # ``there`` (another process) learns it from the queue file's mtime.
    assert there.started('counter') == lock.queue_path('counter')
    assert there.is_hot('counter')
    clock.now += HOT_SECONDS
    assert there.started('counter') is None
    assert not there.is_hot('counter')


def test_a_mark_from_the_future_is_ignored(lock):
    clock = Clock()
    turn_hot(spots_for(lock, clock), 'k')
    clock.now -= 60  # the clock went back
    assert spots_for(lock, clock).started('k') is None


def test_without_a_queue_file_only_this_process_knows(tmp_path):
    (tmp_path / 'file').write_text('')
    lock = HostLock(str(tmp_path / 'file' / 'zeo.sock.lock'))  # cannot be
    spots = spots_for(lock)
    turn_hot(spots, 'k')  # cannot touch the file: no error
    assert spots.started('k') == lock.queue_path('k')
    assert not os.path.exists(lock.queue_path('k'))


def test_few_requests_never_make_a_key_hot(lock):
    spots = spots_for(lock)
    for _ in range(HOT_MIN_REQUESTS - 1):
        spots.started('k')
        spots.escalated('k')
    assert not spots.is_hot('k')


def test_rare_escalations_never_make_a_key_hot(lock):
    # Ordinary writes: ~2% of adds to one folder escalate.
    spots = spots_for(lock)
    for i in range(10_000):
        spots.started('adds')
        if i % 50 == 0:
            spots.escalated('adds')
    assert not spots.is_hot('adds')


def test_old_counts_fade(lock):
    spots = spots_for(lock)
    for _ in range(4 * HOT_MIN_REQUESTS):
        spots.started('k')
    assert spots._keys['k'][0] == 4 * HOT_MIN_REQUESTS
    spots.started('k')
    assert spots._keys['k'][0] == (4 * HOT_MIN_REQUESTS + 1) / 2


def test_only_the_most_recent_keys_are_kept(lock):
    spots = spots_for(lock)
    for i in range(HOT_KEYS + 1):
        spots.started(i)
    spots.started(1)  # touched: kept
    spots.started('new')
    assert 0 not in spots._keys and 2 not in spots._keys
    assert 1 in spots._keys and len(spots._keys) == HOT_KEYS
    spots.escalated(0)  # forgotten: nothing happens
    assert 0 not in spots._keys


# -- before a retry -----------------------------------------------------------


@pytest.fixture
def sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr(contention.time, 'sleep', slept.append)
    return slept


def retry_event(exc, attempt=0, attempts=3, **settings):
    registry = Registry('test')
    registry.registerUtility(ZeostoreSettings(**settings), IZeostoreSettings)
    environ = {}
    if attempt is not None:
        environ.update({'retry.attempt': attempt, 'retry.attempts': attempts})
    request = SimpleNamespace(registry=registry, environ=environ)
    return SimpleNamespace(request=request, environ=environ, exception=exc)


@pytest.mark.parametrize(
    'exc',
    [
        ClientDisconnected('gone'),
        DatabaseUnavailable('', '/var/zeo.sock', 2.0),
    ],
)
def test_an_outage_marks_the_environ_and_does_not_sleep(exc, sleeps):
    event = retry_event(exc)
    before_retry(event.request, event.exception)
    assert event.environ[UNAVAILABLE] is True
    assert EXCLUSIVE not in event.environ
    assert sleeps == []


def test_other_retryable_errors_are_left_alone(sleeps):
    event = retry_event(RuntimeError('retryable for some reason'))
    before_retry(event.request, event.exception)
    assert event.environ == {'retry.attempt': 0, 'retry.attempts': 3}
    assert sleeps == []


def test_first_conflict_backs_off_and_retries_shared(sleeps):
    event = retry_event(ConflictError(), attempt=0, attempts=3)
    before_retry(event.request, event.exception)
    assert EXCLUSIVE not in event.environ
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.005


def test_second_conflict_backs_off_longer_and_retries_alone(sleeps):
    event = retry_event(ReadConflictError(), attempt=1, attempts=5)
    before_retry(event.request, event.exception)
    assert event.environ[EXCLUSIVE] is True
    assert 0 <= sleeps[0] <= 0.01


def test_the_last_attempt_runs_alone(sleeps):
    event = retry_event(ConflictError(), attempt=0, attempts=2)
    before_retry(event.request, event.exception)
    assert event.environ[EXCLUSIVE] is True


def test_without_environ_counts_the_settings_attempts(sleeps):
    event = retry_event(ConflictError(), attempt=None, retry_attempts=2)
    before_retry(event.request, event.exception)
    assert event.environ[EXCLUSIVE] is True


@pytest.mark.parametrize(
    'attempt, attempts, called',
    [(0, 3, 0), (1, 3, 1), (1, 5, 1), (2, 5, 0), (0, 2, 0)],
)
def test_a_second_conflict_is_reported_as_escalation(
    sleeps, attempt, attempts, called
):
    calls = []
    event = retry_event(ConflictError(), attempt=attempt, attempts=attempts)
    event.environ[ESCALATED] = lambda: calls.append(1)
    before_retry(event.request, event.exception)
    assert len(calls) == called


def test_conflict_lock_off_only_backs_off(sleeps):
    event = retry_event(
        ConflictError(),
        attempt=1,
        attempts=3,
        conflict_lock=False,
        retry_backoff=0.1,
        retry_backoff_max=0.15,
    )
    before_retry(event.request, event.exception)
    assert EXCLUSIVE not in event.environ
    assert 0 <= sleeps[0] <= 0.15


# -- the tween ---------------------------------------------------------------


def tween_registry(lock_file, **settings):
    registry = Registry('test')
    registry.registerUtility(
        ZeostoreSettings(lock_file=lock_file, **settings), IZeostoreSettings
    )
    return registry


def test_tween_is_the_handler_itself_without_the_lock(tmp_path):
    handler = object()
    registry = tween_registry(str(tmp_path / 'l'), conflict_lock=False)
    assert contention_tween_factory(handler, registry) is handler


@pytest.mark.parametrize(
    'method, environ, state',
    [
        ('GET', {}, free),
        ('HEAD', {EXCLUSIVE: True}, free),  # reads never wait
        ('OPTIONS', {}, free),
        ('POST', {}, held_shared),
        ('PATCH', {}, held_shared),
        ('DELETE', {}, held_shared),
        ('PUT', {EXCLUSIVE: True}, held_exclusive),
        ('POST', {EXCLUSIVE: True}, held_exclusive),
    ],
)
def test_tween_holds_the_lock_around_writes(tmp_path, method, environ,
                                            state):
    path = str(tmp_path / 'zeo.sock.lock')
    seen = []

    def handler(request):
        seen.append(os.path.exists(path) and state(path))
        return 'response'

    tween = contention_tween_factory(handler, tween_registry(path))
    request = SimpleNamespace(method=method, environ=environ, path_info='/')
    assert tween(request) == 'response'
    assert seen == [True] or (state is free and seen == [False])
    if os.path.exists(path):
        assert free(path)


def test_tween_releases_when_the_handler_raises(tmp_path):
    path = str(tmp_path / 'zeo.sock.lock')

    def handler(request):
        raise ConflictError()

    tween = contention_tween_factory(handler, tween_registry(path))
    with pytest.raises(ConflictError):
        tween(SimpleNamespace(method='POST', environ={}, path_info='/'))
    assert free(path)


def test_tween_counts_first_attempts_and_queues_hot_keys(tmp_path):
    path = str(tmp_path / 'zeo.sock.lock')
    key = ('POST', '/counter/@@increment')
    queue_file = HostLock(path).queue_path(key)
    seen = []

    def handler(request):
        seen.append(
            (
                lock_state(path),
                os.path.exists(queue_file)
                and not can_lock(queue_file, fcntl.LOCK_EX),
                dict(request.environ),
            )
        )
        return 'response'

    tween = contention_tween_factory(handler, tween_registry(path))

    def post(url, **environ):
        environ['PATH_INFO'] = url  # the key: the raw path
        tween(SimpleNamespace(method='POST', environ=environ))
        return seen[-1]

    for _ in range(HOT_MIN_REQUESTS):
        state, queued, environ = post(key[1])
        assert state == 'shared' and not queued
        assert HOT not in environ and EXCLUSIVE not in environ
        environ[ESCALATED]()  # as the subscriber does on a 2nd conflict
    # Hot now: the next request queues, and syncs.
    state, queued, environ = post(key[1])
    assert state == 'shared' and queued
    assert environ[EXCLUSIVE] is True and environ[HOT] == queue_file
    assert ESCALATED not in environ
    # Its retry runs exclusive, not queued.
    state, queued, _ = post(
        key[1], **{'retry.attempt': 1, HOT: queue_file, EXCLUSIVE: True}
    )
    assert state == 'exclusive' and not queued
    # Other keys are not queued; later attempts are not counted again.
    state, queued, environ = post('/adds')
    assert state == 'shared' and not queued and HOT not in environ
    state, queued, environ = post('/adds', **{'retry.attempt': 1})
    assert ESCALATED not in environ
    assert free(path) and free(queue_file)


def test_tween_runs_a_subrequest_within_the_parent_hold(tmp_path):
    path = str(tmp_path / 'zeo.sock.lock')
    inner = []

    def handler(request):
        if request.path_info == '/outer':
            sub = SimpleNamespace(method='POST', environ={},
                                  path_info='/inner')
            return tween(sub)
        inner.append((held_exclusive(path), request.environ))
        return 'inner'

    tween = contention_tween_factory(handler, tween_registry(path))
    outer = SimpleNamespace(
        method='POST', environ={EXCLUSIVE: True}, path_info='/outer'
    )
    assert tween(outer) == 'inner'
    assert inner == [(True, {})]  # ran under the outer exclusive hold
    assert free(path)


# -- with pyramid_tm and pyramid_retry: the whole retry path ----------------


@pytest.fixture
def app_factory(tmp_path, monkeypatch):
    from pyramid.config import Configurator
    from webtest import TestApp

    monkeypatch.setattr(contention.time, 'sleep', lambda s: None)
    lock_file = str(tmp_path / 'zeo.sock.lock')
    made = []

    def make(view, configure=None, **settings):
        settings = {
            'zodb_uri': 'memory://',
            'zeostore.lock_file': lock_file,
            **settings,
        }
        with Configurator(settings=settings) as config:
            config.include('pyramid_zeostore')
            config.add_view(view, name='write', request_method='POST',
                            renderer='json')
            config.add_view(view, name='read', request_method='GET',
                            renderer='json')
            if configure is not None:
                configure(config)
        app = config.make_wsgi_app()
        made.append(app)
        return TestApp(app), lock_file

    yield make
    from pyramid_zeostore import get_databases

    for app in made:
        get_databases(app.registry).close()


def conflicting_view(fail_attempts, seen, lock_file):
    def view(request):
        assert request.zodb_conn is not None  # synced if exclusive
        state = lock_state(lock_file)
        seen.append((request.environ['retry.attempt'], state))
        if request.environ['retry.attempt'] < fail_attempts:
            raise ConflictError()
        return {'ok': True}

    return view


def test_a_hot_write_ends_alone_and_succeeds(app_factory, tmp_path):
    seen = []
    lock_file = str(tmp_path / 'zeo.sock.lock')
    app, _ = app_factory(conflicting_view(2, seen, lock_file))
    resp = app.post('/write')
    assert resp.json == {'ok': True}
    assert seen == [(0, 'shared'), (1, 'shared'), (2, 'exclusive')]


def test_an_ordinary_conflict_is_retried_shared(app_factory, tmp_path):
    seen = []
    lock_file = str(tmp_path / 'zeo.sock.lock')
    app, _ = app_factory(conflicting_view(1, seen, lock_file))
    assert app.post('/write').json == {'ok': True}
    assert seen == [(0, 'shared'), (1, 'shared')]


def test_a_hot_spot_turns_into_a_queue(app_factory, tmp_path):
    seen = []
    lock_file = str(tmp_path / 'zeo.sock.lock')
    app, _ = app_factory(conflicting_view(2, seen, lock_file))
    for _ in range(HOT_MIN_REQUESTS):
        app.post('/write')
    assert seen[-3:] == [(0, 'shared'), (1, 'shared'), (2, 'exclusive')]
    del seen[:]
    # Every request conflicted twice: /write is hot, requests queue. (The
    # view still conflicts twice, as if another host wrote each time.)
    app.post('/write')
    assert seen == [(0, 'shared'), (1, 'exclusive'), (2, 'exclusive')]


def test_spent_attempts_give_409_not_500(app_factory, tmp_path):
    seen = []
    lock_file = str(tmp_path / 'zeo.sock.lock')
    app, _ = app_factory(conflicting_view(99, seen, lock_file))
    resp = app.post('/write', headers={'Accept': 'application/json'},
                    status=409)
    assert resp.json['error'] == 'Conflict'
    assert 'changed by another request 3 time(s)' in resp.json['message']
    assert [s for _, s in seen] == ['shared', 'shared', 'exclusive']
    # reads retry too, never locked
    resp = app.get('/read', headers={'Accept': 'text/html'}, status=409)
    assert resp.content_type == 'text/html'
    assert 'nothing was saved' in resp.text
    assert [s for _, s in seen[3:]] == ['none'] * 3
    assert free(lock_file)


def test_a_conflict_answered_by_an_exception_view_still_escalates(
    app_factory, tmp_path, monkeypatch
):
    # An app's own exception view squashes the error into a response;
    # pyramid_retry retries all the same, and so must the escalation.
    seen = []
    sleeps = []
    lock_file = str(tmp_path / 'zeo.sock.lock')

    def answered(exc, request):
        request.response.status = 418
        return {'conflict': True}

    app, _ = app_factory(
        conflicting_view(2, seen, lock_file),
        configure=lambda config: config.add_exception_view(
            answered, context=ConflictError, renderer='json'
        ),
    )
    monkeypatch.setattr(contention.time, 'sleep', sleeps.append)
    assert app.post('/write').json == {'ok': True}
    assert seen == [(0, 'shared'), (1, 'shared'), (2, 'exclusive')]
    assert len(sleeps) == 2  # backed off before each retry


def test_the_package_adds_no_event_subscriber(app_factory):
    # Any subscriber makes Pyramid's router build and send four events on
    # every request; the package's own work runs in its tweens.
    app, _ = app_factory(lambda request: {})
    assert app.app.registry.has_listeners is False


def test_a_lock_file_that_cannot_be_opened_leaves_writes_unlocked(
    tmp_path, caplog
):
    # (Tests run as root, so a file in the way stands in for a folder
    # the web user may not write.)
    (tmp_path / 'var').write_text('a file, not a folder')
    lock = HostLock(str(tmp_path / 'var' / 'zeo.sock.lock'))
    with caplog.at_level('ERROR', logger='pyramid_zeostore.contention'):
        with lock.shared():
            assert not lock.held
        with lock.exclusive():
            pass
    (record,) = caplog.records  # once per process, not per write
    assert 'zeostore.lock_file' in record.getMessage()
    assert str(tmp_path / 'var' / 'zeo.sock.lock') in record.getMessage()


def test_writes_go_on_when_the_lock_file_cannot_be_opened(
    app_factory, tmp_path, caplog
):
    (tmp_path / 'var').write_text('a file, not a folder')
    seen = []
    app, _ = app_factory(
        conflicting_view(1, seen, str(tmp_path / 'unused')),
        **{'zeostore.lock_file': str(tmp_path / 'var' / 'lock')},
    )
    with caplog.at_level('ERROR', logger='pyramid_zeostore.contention'):
        assert app.post('/write').json == {'ok': True}  # retried, no lock
        assert app.post('/write').json == {'ok': True}
    assert [attempt for attempt, _ in seen] == [0, 1, 0, 1]
    assert len(caplog.records) == 1


def test_lock_files_are_shared_with_the_group_not_the_world(lock):
    old = os.umask(0o002)
    try:
        with lock.shared():
            pass
        lock.mark('k', 0)
    finally:
        os.umask(old)
    for path in (lock.path, lock.gate_path, lock.queue_path('k')):
        assert os.stat(path).st_mode & 0o777 == 0o660, path
