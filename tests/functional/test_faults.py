"""Faults under load on ``gunicorn -w 4``: ZEO killed, a worker killed,
slow clients.

Every test drives the ready app (through the ``workerpid`` filter, so each
answer names its worker) with :mod:`.scenario`, records every answer, and
then reads the database itself to check what the answers promised:

* ZEO killed with SIGKILL or stopped with SIGTERM in the middle of a write
  load, then started again on the same conf and socket: clients get 503 +
  ``Retry-After`` in about ``zeostore.connect_timeout``, never a 500 or a
  hang; the same workers serve again by themselves; every acknowledged
  write is there, and the data file checks clean (``fstest``) once the
  server has stopped cleanly. (A killed server hands out again the new
  oids it had given before; clients must not keep theirs: see
  ``test_zeo_killed_oids_are_not_handed_out_twice``);
* a worker killed with SIGKILL: in the middle of a write (a test view that
  writes, then sleeps before its commit) the write is not there, not even
  in part; at an arbitrary moment of the load the one request in flight in
  that worker may or may not have committed, and everything else is exact;
  gunicorn replaces the worker and the new one serves;
* clients that send part of a request and stall: each ties up a gunicorn
  sync worker until ``--timeout``, while the others go on serving; waitress
  buffers requests in its event loop, so stalls take none of its threads.

Wall-clock figures are recorded and printed (``pytest -s``), and asserted
only against generous bounds that catch hangs.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import threading
import time
import uuid

import pytest
from ZODB.scripts import fstest

from . import conftest as fconf
from .scenario import MIX, WRITES, Scenario

pytestmark = pytest.mark.deploy

WORKERS = 4
CLIENTS = 6
CONNECT_TIMEOUT = 1.0
RETRY_AFTER = '7'
#: a 503 slower than this is a hang (the bound is connect_timeout)
HANG_BOUND = CONNECT_TIMEOUT * 5 + 5
LIMIT = 60.0  # the longest any step waits for something to happen
PHASE = float(os.environ.get('ZEOSTORE_FAULT_SECONDS', '3'))


def wait_until(predicate, what: str, limit: float = LIMIT) -> float:
    """Poll ``predicate`` until true; the seconds it took. Bounded."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > limit:
            raise AssertionError(f'not within {limit}s: {what}')
        time.sleep(0.05)
    return time.monotonic() - start


def note(record_property, key, value) -> None:
    record_property(key, value)
    print(f'\n[measured] {key} = {value}')


def start_gunicorn(servers, tmp_path, zeo, *args, **settings):
    """gunicorn -w 4 on the ready app: (server, worker pids)."""
    settings = {
        'pyramid.includes': 'tests.functional.workerpid',
        'zeostore.connect_timeout': str(CONNECT_TIMEOUT),
        'zeostore.retry_after': RETRY_AFTER,
        **settings,
    }
    ini = fconf.write_ini(tmp_path, zeo.uri(), worker_pid=True, **settings)
    server = servers(fconf.gunicorn(ini, WORKERS, *args), timeout=60)
    return server, fconf.wait_children(server.proc.pid, WORKERS)


def answered_since(scenario: Scenario, since: float) -> set:
    """The pids that gave a 2xx answer finished after ``since``."""
    return {c.pid for c in scenario.calls() if c.ok and c.end > since}


def assert_no_traceback(server) -> None:
    log = server.log(None)
    at = log.find('Traceback')
    assert at < 0, log[max(0, at - 500):at + 3000]


def figures(result) -> dict:
    """The write figures of a run, once verified."""
    return {
        'acked_adds': len(result.names('ok')),
        'found_adds': result.found_adds,
        'acked_increments': result.increments('ok'),
        'counter': result.counter,
        'unknown_writes': len(result.names('unknown'))
        + result.increments('unknown'),
        'slowest_answer_seconds': round(
            max((c.seconds for c in result.calls), default=0.0), 2
        ),
    }


def filestorage_log(zeo) -> list[str]:
    """What FileStorage logged: at the stop, and when it reopened."""
    with open(os.path.join(zeo.dir, 'zeo.log')) as f:
        return [
            line.split(' ', 3)[-1].strip().replace(zeo.dir + '/', '')
            for line in f if 'ZODB.FileStorage' in line
        ]


def fstest_outcome(path: str) -> str:
    try:
        fstest.check(path)
    except fstest.FormatError as e:
        return f'FormatError: {e}'
    return 'clean'


# -- (5), (6) ZEO killed under load -------------------------------------------


@pytest.mark.parametrize(
    'sig', [signal.SIGKILL, signal.SIGTERM], ids=['SIGKILL', 'SIGTERM']
)
def test_zeo_killed_under_load(
    sig, tmp_path, zeo_server, servers, record_property
):
    server, workers = start_gunicorn(servers, tmp_path, zeo_server)
    data_fs = os.path.join(zeo_server.dir, 'Data.fs')
    scenario = Scenario(server.port, clients=CLIENTS, mix=WRITES)
    scenario.setup()
    scenario.start(10 * LIMIT, label=f'gunicorn -w 4, ZEO {sig.name}')
    try:
        wait_until(lambda: scenario.acked_writes() >= 100, '100 writes')
        zeo_server.stop(sig)  # waits for the process to be gone
        killed_at = time.monotonic()
        after_kill = fstest_outcome(data_fs)

        def refused() -> int:
            return sum(
                1 for c in scenario.calls()
                if c.status == 503 and c.start > killed_at
            )

        # the clients meet the outage a couple of times each
        wait_until(lambda: refused() >= 2 * CLIENTS, '503s during outage')
        zeo_server.start()  # same conf, socket and Data.fs
        restarted_at = time.monotonic()
        # every worker serves again, by itself
        all_back = wait_until(
            lambda: answered_since(scenario, restarted_at) >= workers,
            'every worker answering 2xx after the restart',
        )
        # and the load goes on a while
        wait_until(
            lambda: time.monotonic() - restarted_at > PHASE,
            'the load going on after recovery',
        )
    finally:
        scenario.stop()
    result = scenario.wait()

    assert fconf.child_pids(server.proc.pid) == workers, 'a worker restarted'
    scenario.verify(
        result, zeo_server.sock, pids=workers, min_connections=WORKERS,
        allow_503=True,
    )
    first_back = min(
        c.end for c in result.calls if c.ok and c.end > restarted_at
    ) - restarted_at
    outage = [c for c in result.calls if c.status == 503]
    name = sig.name
    print('\n' + result.summary())
    note(record_property, f'{name}_figures', {
        **figures(result),
        '503': len(outage),
        'max_503_seconds': round(result.max_seconds(503), 2),
        'outage_seconds': round(restarted_at - killed_at, 2),
        'first_2xx_after_restart_seconds': round(first_back, 2),
        'all_workers_back_seconds': round(all_back, 2),
        'fstest_right_after_kill': after_kill,
        'filestorage_log': filestorage_log(zeo_server),
    })
    assert result.problems == [], result.summary() + '\n' + server.log()
    assert outage, 'no request met the outage'
    assert result.max_seconds(503) < HANG_BOUND, result.summary()
    assert all(c.retry_after == RETRY_AFTER for c in outage)
    # ZODB logs the disconnections with their tracebacks (a load or a
    # tpc_finish cut off); no request may have escaped as an error.
    log = server.log(None)
    assert 'Error handling request' not in log, log[-6000:]

    # Durable on disk: stop everything cleanly, check the file, read it.
    server.stop()
    zeo_server.stop()
    assert fstest_outcome(data_fs) == 'clean'
    scenario.verify(result, file_storage=data_fs, allow_503=True)
    assert result.problems == [], result.summary()


def test_zeo_killed_oids_are_not_handed_out_twice(zeo_server):
    """A ZEO client pre-fetches new oids 100 at a time; a server killed
    with SIGKILL restarts from the highest oid committed and hands the
    unused ones out again. A client that kept its batch across the
    reconnection would then create objects under oids another client
    also uses: the loser's commit fails (a 500: "A different object
    already has the same oid") and ZODB's abort detaches the object its
    connection had cached under that oid, so later changes to it are
    silently lost. The databases of pyramid_zeostore drop the batch on
    reconnecting."""
    import ZEO

    from pyramid_zeostore import Databases, parse_settings

    specs = parse_settings({'zodb_uri': zeo_server.uri()}).databases
    databases = Databases(specs, connect_timeout=10)
    other = None
    try:
        client = databases.get('').storage
        client.new_oid()  # fetches a batch, keeps the rest
        zeo_server.stop(signal.SIGKILL)
        zeo_server.start()
        wait_until(client.is_connected, 'the client reconnecting')
        other = ZEO.client(zeo_server.sock, wait_timeout=10)
        handed_out = {other.new_oid() for _ in range(100)}
        mine = {client.new_oid() for _ in range(5)}
        assert not mine & handed_out, sorted(mine & handed_out)
    finally:
        if other is not None:
            other.close()
        databases.close()


# -- (7) a worker killed ------------------------------------------------------


class SlowWrite(threading.Thread):
    """POST @@slow-write: writes, then sleeps before its commit."""

    def __init__(self, port: int, scenario: Scenario) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.name_ = 'slow-' + uuid.uuid4().hex[:8]
        self.body = json.dumps({
            'attribute': 'counter', 'folder': scenario.tag,
            'name': self.name_, 'seconds': 20,
        }).encode()
        self.path = scenario.counter + '/@@slow-write'
        self.outcome: object = None

    def run(self) -> None:
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=40)
        try:
            conn.request('POST', self.path, self.body, fconf.JSON_HEADERS)
            resp = conn.getresponse()
            self.outcome = (resp.status, resp.read())
        except (OSError, http.client.HTTPException) as e:
            self.outcome = e
        finally:
            conn.close()


def kill_and_replace(server, scenario, old: set, victim: int):
    """SIGKILL ``victim``, wait for gunicorn to replace it and the new
    worker to answer: (worker pids now, seconds until the new answered)."""
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    now = fconf.wait_children(
        server.proc.pid, WORKERS, without={victim}, limit=LIMIT
    )
    new = now - old
    assert len(new) == 1, (old, now)
    wait_until(
        lambda: new <= answered_since(scenario, killed_at),
        'the new worker answering',
    )
    return now, time.monotonic() - killed_at


def test_worker_killed_mid_request(
    tmp_path, zeo_server, servers, record_property
):
    slow_dir = tmp_path / 'slow'
    slow_dir.mkdir()
    server, workers = start_gunicorn(
        servers, tmp_path, zeo_server,
        **{'zeostore_test.slow_dir': str(slow_dir)},
    )

    # (a) killed between its write and its commit: known not to commit.
    scenario = Scenario(server.port, clients=CLIENTS, mix=MIX)
    scenario.setup()
    scenario.start(10 * LIMIT, label='gunicorn -w 4, worker killed '
                   'mid-write')
    try:
        wait_until(lambda: scenario.acked_writes() >= 50, '50 writes')
        slow = SlowWrite(server.port, scenario)
        slow.start()
        pidfile = slow_dir / (slow.name_ + '.pid')
        wait_until(pidfile.exists, 'the slow write to be under way')
        victim = int(pidfile.read_text())
        assert victim in workers
        workers_a, back_a = kill_and_replace(
            server, scenario, workers, victim
        )
        slow.join(LIMIT)
        assert not slow.is_alive()
        time.sleep(1.0)  # a little more load on the new worker
    finally:
        scenario.stop()
    result = scenario.wait()
    # The slow writer got no answer: its worker died before the commit.
    assert isinstance(slow.outcome, Exception), slow.outcome
    # Exact: no request of the load was in flight in the victim (a sync
    # worker serves one at a time), and the slow write's item would show
    # up as a phantom add, its increment as one too many.
    scenario.verify(
        result, zeo_server.sock, pids=workers_a, min_connections=WORKERS,
    )
    print('\n' + result.summary())
    assert result.problems == [], result.summary() + '\n' + server.log()

    # (b) killed at an arbitrary moment of the load.
    scenario_b = Scenario(server.port, clients=CLIENTS, mix=MIX)
    scenario_b.setup()
    scenario_b.start(10 * LIMIT, label='gunicorn -w 4, worker killed '
                     'at random')
    try:
        wait_until(lambda: scenario_b.acked_writes() >= 50, '50 writes')
        time.sleep(random.uniform(0, 0.5))
        victim_b = random.choice(sorted(workers_a))
        workers_b, back_b = kill_and_replace(
            server, scenario_b, workers_a, victim_b
        )
        time.sleep(1.0)
    finally:
        scenario_b.stop()
    result_b = scenario_b.wait()
    # The victim had at most one request in flight: its outcome is not
    # known (it may have committed before the kill), the rest is exact.
    scenario_b.verify(
        result_b, zeo_server.sock, pids=workers_b, min_connections=WORKERS,
        max_errors=1,
    )
    print('\n' + result_b.summary())
    lost = result_b.errors
    note(record_property, 'worker_kill_figures', {
        'mid_write': dict(
            figures(result),
            slow_write_answer=repr(slow.outcome),
            replacement_answered_after_seconds=round(back_a, 2),
        ),
        'at_random': dict(
            figures(result_b),
            in_flight_lost=[(c.kind, c.error) for c in lost],
            replacement_answered_after_seconds=round(back_b, 2),
        ),
    })
    assert result_b.problems == [], result_b.summary() + '\n' + server.log()
    assert_no_traceback(server)


# -- (8) slow clients ---------------------------------------------------------


def stall(port: int, number: int) -> socket.socket:
    """A connection that sends part of a request, then nothing."""
    sock = socket.create_connection(('127.0.0.1', port), timeout=10)
    if number % 2:
        # the headers never end
        sock.sendall(b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: te')
    else:
        # the body never ends
        body = b'{"name": "never", "type": "item"}'
        head = ''.join(f'{k}: {v}\r\n' for k, v in fconf.JSON_HEADERS.items())
        sock.sendall(
            b'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n' + head.encode()
            + f'Content-Length: {len(body)}\r\n\r\n'.encode() + body[:10]
        )
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Did the server close (or answer) this stalled connection?"""
    sock.settimeout(0.0)
    try:
        sock.recv(1)  # EOF or an answer
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


SLOW = {
    # server: stalled connections (gunicorn: < workers; waitress: 4x
    # its threads, which it can afford)
    'gunicorn': 3,
    'waitress': 16,
}


@pytest.mark.parametrize('kind', list(SLOW))
def test_slow_clients_do_not_stop_the_others(
    kind, tmp_path, zeo_server, servers, record_property
):
    stalls = SLOW[kind]
    if kind == 'gunicorn':
        server, pids = start_gunicorn(servers, tmp_path, zeo_server)
        timeout = 30  # gunicorn's default --timeout
    else:
        ini = fconf.write_ini(
            tmp_path, zeo_server.uri(), worker_pid=True, threads=4,
            **{'zeostore.connect_timeout': str(CONNECT_TIMEOUT)},
        )
        server = servers(fconf.pserve(ini), timeout=60)
        pids = {server.proc.pid}
        timeout = 120  # waitress' channel_timeout
    socks = [stall(server.port, i) for i in range(stalls)]
    try:
        scenario = Scenario(server.port, clients=4, mix=MIX)
        scenario.setup()
        result = scenario.run(
            PHASE, label=f'{kind} with {stalls} stalled connections'
        )
        stalled_ok = not any(closed_by_server(s) for s in socks)
    finally:
        for s in socks:
            s.close()
    if kind == 'gunicorn':
        # The stalled connections came first: K workers took them and
        # wait for the rest, so only the others answered.
        serving = set(result.pids)
        assert len(serving) == WORKERS - stalls, result.pids
        expected = serving
    else:
        expected = pids
    scenario.verify(result, zeo_server.sock, pids=expected)
    print('\n' + result.summary())
    slowest = max(c.seconds for c in result.calls)
    note(record_property, f'{kind}_slow_client_figures', {
        'stalled_connections': stalls,
        'answers': len(result.calls),
        'processes_answering': len(result.pids),
        'slowest_answer_seconds': round(slowest, 2),
        'stalls_still_open': stalled_ok,
    })
    assert result.problems == [], result.summary()
    assert result.ok == len(result.calls), result.summary()
    # Promptly: nobody waited for a stalled worker to be timed out.
    assert slowest < timeout / 2, result.summary()
    assert stalled_ok  # the stalls were held, not dropped early


def test_gunicorn_all_workers_stalled(
    tmp_path, zeo_server, servers, record_property
):
    """The limit: as many stalls as sync workers, and requests wait for
    gunicorn to time a stalled worker out (``--timeout``) and replace it."""
    server, workers = start_gunicorn(
        servers, tmp_path, zeo_server, '--timeout', '10'
    )
    socks = [stall(server.port, i) for i in range(WORKERS)]
    try:
        start = time.monotonic()
        status, headers, body = server.request(
            '/?format=json', headers=fconf.JSON_HEADERS, timeout=LIMIT
        )
        waited = time.monotonic() - start
    finally:
        for s in socks:
            s.close()
    note(record_property, 'gunicorn_all_stalled_wait_seconds',
         round(waited, 2))
    assert status == 200, body
    # Served by a replacement: every original worker was stuck on a stall.
    assert int(headers['X-Worker-Pid']) not in workers
    assert 'WORKER TIMEOUT' in server.log(None), server.log()


# -- workers that restart while ZEO is down -----------------------------------


OUTAGE = 5.0  # seconds ZEO stays down, at least
RETURN_BOUND = 2.0  # every worker serves again within this of ZEO's return


def booted_pids(server) -> list[int]:
    """The workers gunicorn says it booted, in order."""
    marker = 'Booting worker with pid: '
    return [
        int(line.split(marker, 1)[1].split()[0])
        for line in server.log(None).splitlines() if marker in line
    ]


def test_workers_recycling_through_an_outage(
    tmp_path, zeo_server, servers, record_property
):
    """``--max-requests 20``, no ``--preload``: workers that boot while ZEO
    is stopped come up (the startup check warns) and answer 503, the
    master stays up, and once ZEO is back every worker serves."""
    server, first = start_gunicorn(
        servers, tmp_path, zeo_server, '--max-requests', '20',
    )
    scenario = Scenario(server.port, clients=CLIENTS, mix=MIX)
    scenario.setup()
    scenario.start(10 * LIMIT, label='gunicorn -w 4 --max-requests 20')
    try:
        wait_until(lambda: scenario.acked_writes() >= 50, '50 writes')
        zeo_server.stop(signal.SIGTERM)
        stopped_at = time.monotonic()
        before = set(booted_pids(server))

        def booted_in_outage() -> set:
            """Workers booted after the stop that answered a 503."""
            new = set(booted_pids(server)) - before
            return {c.pid for c in scenario.calls()
                    if c.status == 503 and c.pid in new}

        # at least OUTAGE seconds, and until a worker booted in the outage
        # has answered (bounded by LIMIT)
        wait_until(
            lambda: time.monotonic() - stopped_at >= OUTAGE
            and booted_in_outage(),
            'a worker booted during the outage answering 503',
        )
        outage_workers = booted_in_outage()
        assert server.proc.poll() is None, server.log()
        zeo_server.start()
        restarted_at = time.monotonic()
        current = fconf.child_pids(server.proc.pid)

        def back() -> bool:
            live = fconf.child_pids(server.proc.pid)
            ok = answered_since(scenario, restarted_at)
            # the workers alive at the return, or those that replaced them
            return len(ok & (current | live)) >= WORKERS or live <= ok
        all_back = wait_until(back, 'every worker answering after ZEO')
        wait_until(lambda: time.monotonic() - restarted_at > PHASE,
                   'the load going on after recovery')
    finally:
        scenario.stop()
    result = scenario.wait()
    assert server.proc.poll() is None, 'the gunicorn master exited'
    late_503 = [c for c in result.calls
                if c.status == 503 and c.start > restarted_at + RETURN_BOUND]
    outage = [c for c in result.calls if c.status == 503]
    scenario.verify(result, zeo_server.sock, allow_503=True)
    print('\n' + result.summary())
    note(record_property, 'recycling_outage_figures', {
        **figures(result),
        '503': len(outage),
        'max_503_seconds': round(result.max_seconds(503), 2),
        'outage_seconds': round(restarted_at - stopped_at, 2),
        'workers_booted': len(booted_pids(server)),
        'workers_booted_in_outage': len(outage_workers),
        'all_workers_back_seconds': round(all_back, 2),
        '503_started_2s_after_return': len(late_503),
    })
    assert result.problems == [], result.summary() + '\n' + server.log()
    assert outage and all(c.retry_after == RETRY_AFTER for c in outage)
    assert result.max_seconds(503) < HANG_BOUND, result.summary()
    assert 'Worker failed to boot' not in server.log(None)
    assert 'did not answer at startup' in server.log(None)
    # only 503s while it was down; served again within the bound
    assert not late_503, [(c.pid, round(c.start - restarted_at, 2))
                          for c in late_503]
    log = server.log(None)
    assert 'Error handling request' not in log, log[-6000:]

    server.stop()
    zeo_server.stop()
    data_fs = os.path.join(zeo_server.dir, 'Data.fs')
    assert fstest_outcome(data_fs) == 'clean'
    scenario.verify(result, file_storage=data_fs, allow_503=True)
    assert result.problems == [], result.summary()
