"""A ZEO server that stops answering under load, then goes on.

``kill -STOP`` on runzeo leaves its socket open: the kernel accepts
connections and buffers what clients send, and nothing ever answers. ZEO's
own ``wait_timeout`` bounds only the wait for a connection, so without
``zeostore.reply_timeout`` every request in flight, and ``/@@health``, waits
for as long as the server is stopped.

The ready app, on waitress (4 threads) and on ``gunicorn -w 4``, behind the
``workerpid`` filter, under the mixed load of :mod:`.scenario`, with
``zeostore.connect_timeout = 1`` and ``zeostore.reply_timeout = 1``; runzeo
is stopped for ``HANG`` seconds, then continued (SIGCONT). Checked:

* while it is stopped, requests are answered before it continues: 503 with
  ``Retry-After`` (a read of objects the process has cached may still be a
  200), never a 500, and none waits for the whole stop; writes cut off in
  their commit are answered "may or may not have been saved";
* ``/@@health``, asked over and over meanwhile, answers 503 naming the
  database, each time before the server continues;
* after SIGCONT every worker serves again by itself; every acknowledged
  write is there, no increment was applied twice (the counter lies between
  the acknowledged increments and those plus the unknown ones), and the
  data file checks clean (``fstest``) once the server has stopped.

Wall-clock figures are recorded and printed (``pytest -s``) and asserted
only against bounds that catch a hang: each is well under ``HANG``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from . import conftest as fconf
from .scenario import MIX, Scenario
from .test_faults import (
    CLIENTS,
    LIMIT,
    PHASE,
    RETRY_AFTER,
    WORKERS,
    answered_since,
    figures,
    fstest_outcome,
    note,
    wait_until,
)

pytestmark = pytest.mark.deploy

CONNECT_TIMEOUT = 1.0
REPLY_TIMEOUT = 1.0
#: seconds runzeo stays stopped
HANG = float(os.environ.get('ZEOSTORE_HANG_SECONDS', '12'))
#: an answer slower than this during the stop waited for the server (the
#: bound is a retry's few connect + reply timeouts, queued behind others)
HANG_BOUND = HANG * 0.75


class HealthWatch(threading.Thread):
    """GET the health path every ``interval`` seconds until stopped:
    [(start, seconds, status, body)]."""

    def __init__(self, port: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.url = f'http://127.0.0.1:{port}/@@health'
        self.interval = interval
        self.answers: list[tuple[float, float, int | None, dict]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        end = time.monotonic() + 10 * LIMIT
        while not self.halt.is_set() and time.monotonic() < end:
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=LIMIT) as r:
                    status, data = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, data = e.code, e.read()
            except OSError as e:
                status, data = None, repr(e).encode()
            try:
                body = json.loads(data)
            except ValueError:
                body = {'raw': data[:200].decode(errors='replace')}
            self.answers.append(
                (start, time.monotonic() - start, status, body)
            )
            self.halt.wait(self.interval)

    def stop(self) -> None:
        self.halt.set()
        self.join(LIMIT)


def start_server(kind, servers, tmp_path, zeo):
    """The ready app on waitress or gunicorn: (server, worker pids)."""
    ini = fconf.write_ini(
        tmp_path, zeo.uri(), worker_pid=True, threads=4,
        **{
            'pyramid.includes': 'tests.functional.workerpid',
            'zeostore.connect_timeout': str(CONNECT_TIMEOUT),
            'zeostore.reply_timeout': str(REPLY_TIMEOUT),
            'zeostore.retry_after': RETRY_AFTER,
        },
    )
    if kind == 'waitress':
        server = servers(fconf.pserve(ini), timeout=60)
        return server, {server.proc.pid}
    server = servers(fconf.gunicorn(ini, WORKERS), timeout=60)
    return server, fconf.wait_children(server.proc.pid, WORKERS)


@pytest.mark.parametrize('kind', ['waitress', 'gunicorn'])
def test_zeo_stopped_under_load(
    kind, tmp_path, zeo_server, servers, record_property
):
    server, workers = start_server(kind, servers, tmp_path, zeo_server)
    data_fs = os.path.join(zeo_server.dir, 'Data.fs')
    scenario = Scenario(server.port, clients=CLIENTS, mix=MIX)
    scenario.setup()
    health = HealthWatch(server.port)
    scenario.start(10 * LIMIT, label=f'{kind}, ZEO SIGSTOP {HANG:g}s')
    stopped = False
    try:
        wait_until(lambda: scenario.acked_writes() >= 50, '50 writes')
        health.start()
        os.kill(zeo_server.pid, signal.SIGSTOP)
        stopped = True
        stopped_at = time.monotonic()
        time.sleep(HANG)
        os.kill(zeo_server.pid, signal.SIGCONT)
        stopped = False
        continued_at = time.monotonic()
        all_back = wait_until(
            lambda: answered_since(scenario, continued_at) >= workers,
            'every worker answering 2xx after SIGCONT',
        )
        wait_until(
            lambda: time.monotonic() - continued_at > PHASE,
            'the load going on after recovery',
        )
    finally:
        if stopped:
            os.kill(zeo_server.pid, signal.SIGCONT)
        health.stop()
        scenario.stop()
    result = scenario.wait()

    scenario.verify(result, zeo_server.sock, pids=workers, allow_503=True)
    print('\n' + result.summary())
    # sent while it was stopped (after the first reply bound, when every
    # connection has seen it stop)
    during = [
        c for c in result.calls
        if stopped_at + REPLY_TIMEOUT < c.start < continued_at
    ]
    answered_during = [c for c in during if c.end < continued_at]
    refused = [c for c in result.calls if c.status == 503]
    uncertain = [c for c in refused if 'may or may not' in (c.message or '')]
    # asked and answered while it was stopped (on waitress a health request
    # may queue behind the clients' for a few seconds, so count by both ends
    # but ask for fewer than fit in the stop)
    health_during = [
        a for a in health.answers
        if stopped_at + CONNECT_TIMEOUT + REPLY_TIMEOUT < a[0]
        and a[0] + a[1] < continued_at
    ]
    note(record_property, f'sigstop_{kind}_figures', {
        **figures(result),
        '503': len(refused),
        '503_may_have_saved': len(uncertain),
        'sent_during_stop': len(during),
        'answered_before_sigcont': len(answered_during),
        'statuses_during_stop': sorted({c.status for c in during},
                                       key=str),
        'max_seconds_during_stop': round(
            max((c.seconds for c in during), default=0.0), 2),
        'max_503_seconds': round(result.max_seconds(503), 2),
        'health_during_stop': [(a[2], round(a[1], 2))
                               for a in health_during],
        'all_workers_back_seconds': round(all_back, 2),
    })
    assert result.problems == [], result.summary() + '\n' + server.log()
    # bounded: the clients were answered while the server was stopped
    if os.environ.get('HANG_DEBUG'):
        print(server.log(None)[-20000:])
        for c in sorted(during, key=lambda c: c.start):
            print(round(c.start - stopped_at, 2), round(c.seconds, 2),
                  c.kind, c.status, c.client, (c.message or '')[:60])
    assert len(answered_during) >= CLIENTS, result.summary()
    assert {c.status for c in answered_during} <= {200, 503}, (
        result.summary())
    assert all(c.ok is False for c in answered_during
               if c.kind in ('add', 'increment')), result.summary()
    assert max(c.seconds for c in during) < HANG_BOUND, result.summary()
    assert refused and all(c.retry_after == RETRY_AFTER for c in refused)
    # the health check saw it down, each time within its bound
    assert len(health_during) >= 2, health.answers
    assert all(a[2] == 503 and a[3].get('down') == ['']
               for a in health_during), health_during
    assert max(a[1] for a in health.answers) < HANG_BOUND, health.answers
    log = server.log(None)
    assert 'Error handling request' not in log, log[-6000:]

    # Durable on disk: stop everything cleanly, check the file, read it.
    server.stop()
    zeo_server.stop()
    assert fstest_outcome(data_fs) == 'clean'
    scenario.verify(result, file_storage=data_fs, allow_503=True)
    assert result.problems == [], result.summary()
