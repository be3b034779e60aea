"""A PostgreSQL server that stops answering under load, then goes on
(RelStorage's ``postgres://``; the ZEO counterpart is test_hang.py).

The ready app on waitress (4 threads, behind the ``workerpid`` filter),
``zodb_uri = postgres://...?connect_timeout=2``, under the mixed load of
:mod:`.scenario`; then, for ``PAUSE`` seconds, with SIGSTOP:

``backends``  the server processes of the app's own connections (found in
              ``pg_stat_activity``): a backend stuck, the postmaster still
              accepting new connections;
``cluster``   the postmaster and all its children: a frozen server, as a
              paused container or VM would be (on one host).

then SIGCONT. What libpq gives here, measured (see the figures printed
with ``pytest -s``): on an open connection nothing bounds the wait for an
answer. Over loopback the kernel of the stopped server still ACKs, so TCP
keepalives and ``tcp_user_timeout`` never fire, and ``statement_timeout``
is the stopped server's own timer: a statement that was running is
cancelled only after SIGCONT, which RelStorage takes for a disconnection
and reconnects. ``connect_timeout`` bounds only a *new* connection (to a
stopped postmaster: ``timeout expired`` after 2 s). So every request in
flight waits for the whole stop, and all of them complete by themselves
right after SIGCONT. ``/@@health`` bounds its own query (probe.within),
but here waits for one of waitress's threads, which the stuck requests
hold.

Checked: after SIGCONT every request completes, with 2xx or 503 (no 500,
no connection error; the client's timeout is longer than the stop); the
app serves 2xx again by itself; every acknowledged write is in PostgreSQL
and no increment was applied twice (:meth:`.Scenario.verify`, reading the
database through a fresh read-only RelStorage). Wall-clock figures are
asserted only against bounds that catch a permanent hang.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
import zodburi

from . import conftest as fconf
from .postgres import PASSWORD, running_postgres
from .scenario import MIX, Scenario
from .test_faults import LIMIT, RETRY_AFTER, figures, note, wait_until
from .test_hang import HealthWatch

pytestmark = pytest.mark.slow

CLIENTS = 6  # more than waitress' 4 threads: some wait in its queue
THREADS = 4
#: seconds PostgreSQL stays stopped
PAUSE = float(os.environ.get('ZEOSTORE_PG_PAUSE_SECONDS', '8'))
CONNECT_TIMEOUT = 2  # libpq's, in the URI
#: the clients' timeout: longer than the stop, so a wait is not an error
CLIENT_TIMEOUT = PAUSE + 30
#: a request sent this soon after the SIGSTOP may have had its answers
GRACE = 0.5
#: load after recovery
AFTER = 2.0


@pytest.fixture(scope='module')
def pg():
    """One throw-away PostgreSQL for the module (each test has its own
    database). Skips, or fails under CI, without it."""
    with running_postgres() as server:
        yield server


def app_backends(pg, dbname: str) -> list[int]:
    """The pids of the server processes of ``dbname``'s clients."""
    rows = pg.psql(
        'SELECT pid FROM pg_stat_activity WHERE datname = '
        f"'{dbname}' AND backend_type = 'client backend' "
        'AND pid <> pg_backend_pid()'
    )
    return [int(line) for line in rows.split()]


def fresh_connection(pg, dbname: str) -> tuple[float, str]:
    """(seconds, outcome) of a new libpq connection and one query, with
    ``connect_timeout``."""
    import psycopg2

    start = time.monotonic()
    try:
        conn = psycopg2.connect(
            f'dbname={dbname} user={dbname} password={PASSWORD} '
            f'host=127.0.0.1 port={pg.port} '
            f'connect_timeout={CONNECT_TIMEOUT}'
        )
        try:
            conn.cursor().execute('SELECT 1')
        finally:
            conn.close()
        outcome = 'ok'
    except psycopg2.OperationalError as e:
        # libpq's reason, after its "connection to server at ... failed: "
        outcome = 'OperationalError: ' + str(e).strip().rsplit(': ', 1)[-1]
    return time.monotonic() - start, outcome


def cont(stopped: list[int]) -> None:
    """SIGCONT each pid of ``stopped``, emptying it."""
    while stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stopped.pop(), signal.SIGCONT)


def verify_in_postgres(scenario, result, uri: str, **kw) -> list[str]:
    """:meth:`.Scenario.verify` against the RelStorage database at
    ``uri``, read through a read-only RelStorage of its own."""
    sep = '&' if '?' in uri else '?'
    factory, _ = zodburi.resolve_uri(f'{uri}{sep}read_only=true')
    return scenario.verify(result, storage=factory(), **kw)


@pytest.mark.parametrize('what', ['backends', 'cluster'])
def test_postgres_stopped_under_load(
    what, pg, tmp_path, servers, record_property
):
    dbname = f'hang_{what}'
    uri = pg.create_database(dbname)
    ini = fconf.write_ini(
        tmp_path, f'{uri}?connect_timeout={CONNECT_TIMEOUT}',
        worker_pid=True, threads=THREADS,
        **{
            'pyramid.includes': 'tests.functional.workerpid',
            'zeostore.retry_after': RETRY_AFTER,
        },
    )
    server = servers(fconf.pserve(ini), timeout=60)
    worker = server.proc.pid
    scenario = Scenario(
        server.port, clients=CLIENTS, mix=MIX, timeout=CLIENT_TIMEOUT
    )
    scenario.setup()
    health = HealthWatch(server.port)
    scenario.start(10 * LIMIT, label=f'waitress, PostgreSQL {what} '
                   f'SIGSTOP {PAUSE:g}s')
    stopped: list[int] = []
    try:
        wait_until(lambda: scenario.acked_writes() >= 50, '50 writes')
        health.start()
        backends = app_backends(pg, dbname)
        targets = backends if what == 'backends' else pg.processes()
        stopped_at = time.monotonic()
        for pid in targets:
            stopped.append(pid)  # first: the finally continues it
            # A short-lived child of the cluster (an autovacuum worker, a
            # backend that just ended) may be gone since it was listed.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        # libpq's connect_timeout, meanwhile: a new connection
        probe = fresh_connection(pg, dbname)
        time.sleep(max(0.0, stopped_at + PAUSE - time.monotonic()))
        continued_at = time.monotonic()
        cont(stopped)
        first_back = wait_until(
            lambda: any(c.ok and c.start > continued_at
                        for c in scenario.calls()),
            'a request sent after SIGCONT answered 2xx',
        )
        wait_until(
            lambda: time.monotonic() - continued_at > AFTER,
            'the load going on after recovery',
        )
    finally:
        cont(stopped)  # before anything else
        health.stop()
        scenario.stop()
    result = scenario.wait()
    server.stop()

    verify_in_postgres(
        scenario, result, uri, pids={worker}, allow_503=True
    )
    print('\n' + result.summary())
    in_flight = [c for c in result.calls
                 if c.start < stopped_at < c.end]
    # sent once the stop was in force (a request whose last answer from
    # PostgreSQL came just before the SIGSTOP may end just after it)
    answered_before = [c for c in result.calls
                       if stopped_at + GRACE < c.start
                       and c.end < continued_at]
    health_during = [a for a in health.answers
                     if a[0] < continued_at and a[0] + a[1] > stopped_at]
    note(record_property, f'pg_sigstop_{what}_figures', {
        **figures(result),
        'stopped_processes': len(targets),
        'app_backends': len(backends),
        'pause_seconds': round(continued_at - stopped_at, 2),
        'in_flight_at_stop': len(in_flight),
        'statuses': {str(k): v for k, v in result.statuses().items()},
        'statuses_in_flight': sorted({str(c.status) for c in in_flight}),
        'max_seconds_in_flight': round(
            max((c.seconds for c in in_flight), default=0.0), 2),
        'in_flight_done_after_sigcont_seconds': round(
            max((c.end for c in in_flight), default=continued_at)
            - continued_at, 2),
        'answered_before_sigcont': [
            (c.kind, c.status, round(c.start - stopped_at, 2))
            for c in answered_before],
        '503': result.count(503, 504),
        'health_during_stop': [
            (a[2], round(a[1], 2)) for a in health_during],
        'new_connection_during_stop': (round(probe[0], 2), probe[1]),
        'first_2xx_sent_after_sigcont_seconds': round(first_back, 2),
    })
    assert result.problems == [], result.summary() + '\n' + server.log()
    # every answer: 2xx or 503 (verify: no other 5xx, Retry-After on
    # each 503, no connection error); a 503 only for a write or a read
    # that saw the driver's disconnection
    assert {c.status for c in result.calls} <= {200, 201, 503}, (
        result.summary())
    # the stop met requests, and they completed after SIGCONT by
    # themselves, well within the clients' timeout
    assert len(in_flight) >= THREADS, result.summary()
    done_after = max(c.end for c in in_flight) - continued_at
    assert done_after < LIMIT / 2, result.summary()
    assert all(c.status == 503 for c in answered_before), answered_before
    assert first_back < LIMIT / 2
    # /@@health answered too, once continued
    assert health.answers and health.answers[-1][2] == 200, health.answers
    assert max(a[1] for a in health.answers) < PAUSE + LIMIT / 2
    # connect_timeout bounds a new connection to a stopped postmaster;
    # with only the backends stopped, the postmaster still serves one
    if what == 'cluster':
        assert probe[1] == 'OperationalError: timeout expired', probe
        assert probe[0] < CONNECT_TIMEOUT + 3, probe
    else:
        assert probe[1] == 'ok', probe
    log = server.log(None)
    assert 'Exception while serving' not in log, log[-6000:]
