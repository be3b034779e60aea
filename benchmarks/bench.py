"""Three apps, the same routes, the same server: reads, writes, ceiling.

``make bench`` (= ``python benchmarks/bench.py``) serves, each under its
own ``gunicorn -w 2 -k sync`` on 127.0.0.1 (and, for the two database
apps, over its own fresh ``runzeo`` on a Unix socket, seeded with the
same data by ``seed.py``: a Folder root of 1,000 items and a counter):

* ``ours``  ``egg:pyramid_zeostore`` with its default settings and the
  ``zodb_uri`` of ``deploy/production.ini``
  (``connection_cache_size=20000``; a client reads its own writes through
  the ``zeostore_sync`` cookie, not ``server_sync``);
* ``peer``  pyramid_zodbconn + pyramid_tm + pyramid_retry
  (``peer_app.py``, same views), over the same ZEO client settings
  (``zconfig://``: ``server-sync`` and a 20,000-object cache);
* ``bare``  Pyramid and the same views over the same folder built in
  memory: no ZODB, no ZEO, no tm, no retry (``bare_app.py``).

``--server-sync on`` adds ``server_sync=true`` to both database apps (and
the ceiling): every transaction then begins with a round trip to ZEO.
Load: ``wrk -t1 -c8`` with ``wrk.lua``, one scenario per run:
``read-list``, ``read-item``, ``write-add``, ``write-counter``, ``mixed``
(90% read-item, 10% write-add). ZEO and gunicorn are pinned to CPU 0,
wrk to CPU 1 (``taskset``). Plus the **raw commit ceiling**: the same
add (or increment) committed straight through ZEO in a loop by 1 and by
2 processes (``seed.py ceiling``), pinned like the workers.

Every app is warmed up first; then, for ``--rounds`` rounds, each
scenario runs on every app (and the ceiling, for the write scenarios)
for ``--seconds``, in an order rotated every round and scenario, so that
background load on a shared machine hits them alike. Ratios are taken
within one round and the median over rounds is reported (with the
spread). After each write run the database is read back through ZEO:
the counter moved by exactly the 2xx increments, the folder grew by
exactly the 2xx adds and holds every name acknowledged (``ok``/``FAIL``;
exit status 1 on a FAIL). Worker memory (RSS) is read at the end. A cold
start (``pserve development.ini`` from fresh copies of development.ini and
zeo.conf, ZEO autostart included, to the first 200 on ``/``) is timed
first. The table goes to stdout and to ``benchmarks/results/<date>.md``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench.py                  # 3 x 10 s, ~10 min
    .venv/bin/python benchmarks/bench.py --seconds 5 --rounds 3 \\
        --scenarios read-list read-item --apps ours bare
    .venv/bin/python benchmarks/bench.py --smoke          # CI: ~10-20 s
    .venv/bin/python benchmarks/bench.py --cold-start-only
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.metadata
import importlib.util
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIN = os.path.dirname(sys.executable)
LUA = os.path.join(HERE, 'wrk.lua')
sys.path.insert(0, HERE)

import seed  # noqa: E402  (benchmarks/seed.py)
from common import (  # noqa: E402
    LOGGING,
    SECRET,
    ZEO_CONF,
    connects,
    free_port,
    wait_for,
)

APPS = ('ours', 'peer', 'bare')
DB_APPS = ('ours', 'peer')
SCENARIOS = ('read-list', 'read-item', 'write-add', 'write-counter', 'mixed')
WRITES = ('write-add', 'write-counter', 'mixed')
#: The ceiling loop measured beside each write scenario.
CEILING_KIND = {'write-add': 'add', 'write-counter': 'counter'}
SERVER_CPU, CLIENT_CPU = '0', '1'
DRAIN_SECONDS = 12  # wrk's hard limit: SECONDS + this (drain + timeouts)
WRK_TIMEOUT = '10s'

PEER_DB_CONF = """\
%import ZEO
<zodb>
  cache-size 20000
  <clientstorage>
    server {sock}
    server-sync {sync}
  </clientstorage>
</zodb>
"""

# -- small helpers -----------------------------------------------------------


def http_get(port: int, path: str, timeout: float = 5.0) -> int:
    """The status of ``GET path``, or 0 if there was no answer."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request('GET', path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ('Z', 'X')


def stop_pid(pid: int, group: bool = False, timeout: float = 15.0) -> None:
    """SIGTERM ``pid`` (its process group if ``group``), SIGKILL after
    ``timeout``; returns once it is gone (bounded)."""
    kill = os.killpg if group else os.kill
    try:
        kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            kids.append(int(entry))
    return kids


def rss_mib(pid: int) -> float:
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float('nan')


def cpu_busy(cpu: str) -> int:
    """Busy clock ticks of CPU ``cpu`` so far (everything but idle and
    iowait), from /proc/stat."""
    try:
        with open('/proc/stat') as f:
            for line in f:
                if line.startswith(f'cpu{cpu} '):
                    v = [int(x) for x in line.split()[1:9]]
                    return sum(v) - v[3] - v[4]
    except OSError:
        pass
    return 0


def cpu_ticks(pids: list[int]) -> int:
    """User + system clock ticks used so far by ``pids``."""
    total = 0
    for pid in pids:
        try:
            with open(f'/proc/{pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def own_cpu() -> float:
    """CPU seconds of this process and its reaped children (wrk)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float('nan')


class Pinning:
    """``taskset -c CPU`` prefixes, or none (one CPU, or ``--no-pin``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = (
            enabled and (os.cpu_count() or 1) >= 2
            and shutil.which('taskset') is not None
        )

    def server(self) -> list[str]:
        return ['taskset', '-c', SERVER_CPU] if self.enabled else []

    def client(self) -> list[str]:
        return ['taskset', '-c', CLIENT_CPU] if self.enabled else []


# -- one app: runzeo + gunicorn -----------------------------------------------


class Stack:
    """One app (or the ceiling's database): a runzeo and a gunicorn,
    started in ``root``, stopped by pid."""

    def __init__(self, app: str, root: str, args: Any, pin: Pinning):
        self.app = app
        self.dir = os.path.join(root, app)
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, 'zeo.sock')
        self.port = free_port()
        self.args = args
        self.pin = pin
        self.procs: list[subprocess.Popen] = []
        self.gunicorn: subprocess.Popen | None = None

    @property
    def has_db(self) -> bool:
        return self.app != 'bare'

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen:
        with open(os.path.join(self.dir, log), 'ab') as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=self.dir,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def start_zeo(self) -> None:
        conf = os.path.join(self.dir, 'zeo.conf')
        with open(conf, 'w') as f:
            f.write(ZEO_CONF.format(var=self.dir))
        self._spawn(
            self.pin.server() + [sys.executable, '-m', 'ZEO.runzeo',
                                 '-C', conf],
            'runzeo.out',
        )
        wait_for(lambda: connects(self.sock, socket.AF_UNIX), 60, 'runzeo')
        seed.seed(self.sock, self.args.items)

    def ini(self) -> str:
        sync = self.args.server_sync == 'on'
        if self.app == 'ours':
            query = 'connection_cache_size=20000'
            if sync:
                query = 'server_sync=true&' + query
            app = ['use = egg:pyramid_zeostore',
                   f'zodb_uri = zeo://{self.sock}?{query}',
                   f'zeostore.secret = {SECRET}']
        elif self.app == 'peer':
            dbconf = os.path.join(self.dir, 'peer-db.conf')
            with open(dbconf, 'w') as f:
                f.write(PEER_DB_CONF.format(
                    sock=self.sock, sync='true' if sync else 'false'))
            app = ['paste.app_factory = peer_app:main',
                   f'zodbconn.uri = zconfig://{dbconf}',
                   'retry.attempts = 3']
        else:
            app = ['paste.app_factory = bare_app:main',
                   f'bench.items = {self.args.items}']
        path = os.path.join(self.dir, 'app.ini')
        with open(path, 'w') as f:
            f.write('[app:main]\n' + '\n'.join(app) + '\n' + LOGGING)
        return path

    def start(self, serve: bool = True) -> None:
        if self.has_db:
            self.start_zeo()
        if not serve:
            return
        self.gunicorn = self._spawn(
            self.pin.server() + [
                os.path.join(BIN, 'gunicorn'),
                '--paste', self.ini(),
                '--pythonpath', HERE,
                '-w', str(self.args.workers),
                '-k', 'sync',
                '-b', f'127.0.0.1:{self.port}',
                '--timeout', '60',
                '--graceful-timeout', '5',
                '--backlog', '256',
                '--log-level', 'warning',
                '--no-control-socket',
            ],
            'gunicorn.log',
        )
        gunicorn = self.gunicorn

        def ready() -> bool:
            if gunicorn.poll() is not None:
                raise RuntimeError(
                    f'{self.app}: gunicorn exited:\n{self.log_tail(20)}')
            return http_get(self.port, '/?format=json') == 200

        wait_for(ready, 90, f'{self.app} (gunicorn)')

    def pids(self) -> list[int]:
        """runzeo, the gunicorn master and its workers (taskset execs)."""
        pids = [p.pid for p in self.procs if p.poll() is None]
        if self.gunicorn is not None:
            pids += children_of(self.gunicorn.pid)
        return pids

    def worker_rss(self) -> list[float]:
        if self.gunicorn is None:
            return []
        return [rss_mib(pid) for pid in children_of(self.gunicorn.pid)]

    def stop(self) -> None:
        # gunicorn first (its session: the workers), then runzeo
        for proc in reversed(self.procs):
            if proc.poll() is None:
                stop_pid(proc.pid, group=True)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        self.procs = []

    def log_tail(self, lines: int = 5) -> str:
        try:
            with open(os.path.join(self.dir, 'gunicorn.log'),
                      errors='replace') as f:
                return ''.join(f.readlines()[-lines:])
        except OSError:
            return ''


# -- load: one wrk run, one ceiling run ---------------------------------------


@dataclass
class Run:
    app: str
    scenario: str
    round: int
    seconds: float
    data: dict = field(default_factory=dict)
    check: str = 'n/a'
    check_ok: bool = True
    #: % of CPU 0 (the servers') and of CPU 1 (wrk's) that processes
    #: not of this benchmark used during the run
    other_cpu: float = float('nan')
    other_cpu1: float = float('nan')

    @property
    def statuses(self) -> dict[int, int]:
        return {int(k): v for k, v in self.data.get('statuses', {}).items()}

    def _window(self, pred: Callable[[int], bool]) -> int:
        return sum(
            v for k, v in self.data.get('window', {}).items()
            if pred(int(k))
        )

    @property
    def rps(self) -> float:
        """Scenario responses per second (any status)."""
        if 'commits' in self.data:
            return self.ok_rps
        return self._window(lambda s: True) / self.seconds

    @property
    def ok_rps(self) -> float:
        """2xx responses per second (commits/s for the ceiling)."""
        if 'commits' in self.data:
            return self.data['commits'] / self.data['elapsed']
        return self._window(lambda s: 200 <= s < 300) / self.seconds

    @property
    def p50(self) -> float:
        return self.data.get('p50_us', float('nan')) / 1000

    @property
    def p99(self) -> float:
        return self.data.get('p99_us', float('nan')) / 1000

    @property
    def ok_count(self) -> int:
        return sum(v for s, v in self.statuses.items() if 200 <= s < 300)

    @property
    def unknown(self) -> int:
        """Scenario requests sent without an answer (timeouts, errors)."""
        return max(0, self.data.get('sent', 0) - self.data.get('answered', 0))


def run_wrk(stack: Stack, scenario: str, seconds: float, args: Any,
            pin: Pinning, names_path: str) -> dict:
    """One wrk run of ``scenario`` against ``stack``: the BENCH-JSON dict."""
    hard = math.ceil(seconds) + DRAIN_SECONDS
    argv = pin.client() + [
        'wrk', '-t1', f'-c{args.connections}', f'-d{hard}s',
        '--timeout', WRK_TIMEOUT, '--latency', '-s', LUA,
        f'http://127.0.0.1:{stack.port}/', '--',
        scenario, repr(float(seconds)), str(random.randrange(1, 2**30)),
        names_path, str(args.items), '0.1',
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(hard + 30, proc.kill)
    watchdog.start()
    result = None
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when wrk exits (-d bounds it)
            lines.append(line)
            if line.startswith('BENCH-DRAINED'):
                proc.send_signal(signal.SIGINT)  # wrk stops, runs done()
            elif line.startswith('BENCH-JSON '):
                result = json.loads(line[len('BENCH-JSON '):])
        proc.wait(30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    if result is None:
        raise RuntimeError(
            f'wrk gave no result for {stack.app} {scenario}:\n'
            + ''.join(lines[-20:])
        )
    return result


def run_ceiling(stack: Stack, kind: str, procs: int, seconds: float,
                args: Any, pin: Pinning) -> dict:
    """``procs`` processes commit ``kind`` straight through ZEO for
    ``seconds``, started together: commits, conflicts, elapsed."""
    argv = pin.server() + [
        sys.executable, os.path.join(HERE, 'seed.py'), 'ceiling',
        stack.sock, '--kind', kind, '--seconds', repr(float(seconds)),
    ] + (['--sync'] if args.server_sync == 'on' else [])
    workers = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, start_new_session=True)
        for _ in range(procs)
    ]
    timers = [threading.Timer(seconds + 90, w.kill) for w in workers]
    for t in timers:
        t.start()
    try:
        for w in workers:
            assert w.stdout is not None
            line = w.stdout.readline()  # 'ready' (bounded by the timer)
            if line.strip() != 'ready':
                raise RuntimeError(f'ceiling process: {line!r}')
        for w in workers:
            assert w.stdin is not None
            w.stdin.write('go\n')
            w.stdin.flush()
        results = []
        for w in workers:
            assert w.stdout is not None
            results.append(json.loads(w.stdout.readline()))
            w.wait(30)
    finally:
        for t in timers:
            t.cancel()
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(5)
    return {
        'commits': sum(r['commits'] for r in results),
        'conflicts': sum(r['conflicts'] for r in results),
        'elapsed': max(r['seconds'] for r in results) or seconds,
        'procs': procs,
    }


def measure(stack: Stack, scenario: str, rnd: int, seconds: float,
            args: Any, pin: Pinning, tmp: str,
            our_pids: Callable[[], list[int]]) -> Run:
    """One measured run, with the write check for the database apps.

    Also notes how much of CPU 0 (the servers' CPU) other processes of
    the machine took meanwhile: its busy time less that of our runzeo
    and gunicorn processes, all pinned there.
    """
    run = Run(stack.app, scenario, rnd, seconds)
    names_path = os.path.join(tmp, f'names-{stack.app}-{scenario}-{rnd}')
    check = stack.has_db and scenario in WRITES
    before = seed.State(stack.sock).snapshot() if check else None
    pids = our_pids()
    busy0, ours0, t0 = cpu_busy(SERVER_CPU), cpu_ticks(pids), time.monotonic()
    busy1, mine1 = cpu_busy(CLIENT_CPU), own_cpu()
    run.data = run_wrk(stack, scenario, seconds, args, pin, names_path)
    if pin.enabled:
        tck = os.sysconf('SC_CLK_TCK')
        other = (cpu_busy(SERVER_CPU) - busy0) - (cpu_ticks(pids) - ours0)
        wall = (time.monotonic() - t0) * tck
        run.other_cpu = max(0.0, 100 * other / wall) if wall else 0.0
        # CPU 1: less wrk (a reaped child) and this process (unpinned:
        # an upper bound of its share there)
        other = (cpu_busy(CLIENT_CPU) - busy1) - (own_cpu() - mine1) * tck
        run.other_cpu1 = max(0.0, 100 * other / wall) if wall else 0.0
    if not run.ok_count:
        run.check, run.check_ok = 'FAIL: no 2xx answer', False
    if not check:
        return run
    with open(names_path) as f:
        # Location: http://127.0.0.1:PORT/new-<uuid>/
        names = [
            urllib.parse.unquote(line.strip().rstrip('/').rsplit('/', 1)[-1])
            for line in f if line.strip()
        ]
    after = seed.State(stack.sock).snapshot(names)
    statuses = run.statuses
    unknown = run.unknown
    if scenario == 'write-counter':
        what, acked = 'counter', statuses.get(200, 0)
        moved = after['counter'] - before['counter']
    else:
        what, acked = 'adds', statuses.get(201, 0)
        moved = after['length'] - before['length']
    problems = []
    if after['missing']:
        problems.append(f'{len(after["missing"])} acknowledged adds missing')
    if len(names) != statuses.get(201, 0):
        problems.append(f'{len(names)} names for {statuses.get(201, 0)} 201s')
    if not acked <= moved <= acked + unknown:
        problems.append(f'{what} {moved} != {acked} 2xx')
    if problems:
        run.check, run.check_ok = 'FAIL: ' + '; '.join(problems), False
    else:
        run.check = f'ok {what} {moved}/{acked}' + (
            f' ({unknown} unanswered)' if unknown else '')
    return run


# -- cold start ---------------------------------------------------------------


def cold_start(root: str, run_no: int) -> dict:
    """``pserve development.ini`` in a new dir (fresh copies of the
    repository's development.ini and zeo.conf, the waitress port moved to
    a free one) until the first 200 on ``/``; ZEO is autostarted."""
    here = os.path.join(root, f'cold-{run_no}')
    os.makedirs(here)
    port = free_port()
    with open(os.path.join(REPO, 'development.ini')) as f:
        ini = f.read()
    lines = [
        f'listen = 127.0.0.1:{port}' if line.startswith('listen =') else line
        for line in ini.splitlines()
    ]
    with open(os.path.join(here, 'development.ini'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    shutil.copy(os.path.join(REPO, 'zeo.conf'), here)
    sock = os.path.join(here, 'var', 'zeo.sock')
    log = open(os.path.join(here, 'pserve.log'), 'wb')
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [os.path.join(BIN, 'pserve'), 'development.ini'],
        cwd=here, stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    zeo_up = None
    status = 0
    try:
        deadline = t0 + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if zeo_up is None and os.path.exists(sock):
                zeo_up = time.monotonic() - t0
            status = http_get(port, '/', timeout=5)
            if status == 200:
                break
            time.sleep(0.01)
        total = time.monotonic() - t0
    finally:
        log.close()
        if proc.poll() is None:
            stop_pid(proc.pid, group=True)
        proc.wait(10)
        pid_file = os.path.join(here, 'var', 'zeo.pid')
        try:
            with open(pid_file) as f:
                zeo_pid = int(f.read().strip())
        except (OSError, ValueError):
            zeo_pid = None
        if zeo_pid and alive(zeo_pid):
            with open(f'/proc/{zeo_pid}/cmdline', 'rb') as f:
                cmdline = f.read()
            if b'runzeo' in cmdline:  # the server this pserve started
                stop_pid(zeo_pid)
    if status != 200:
        with open(os.path.join(here, 'pserve.log'), errors='replace') as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f'cold start: no 200 on / (last {status}):\n'
                           + tail)
    return {'seconds': total, 'zeo_socket': zeo_up}


def cold_starts(root: str, runs: int) -> list[dict]:
    results = []
    for i in range(runs):
        results.append(cold_start(root, i))
        print(f'cold start {i + 1}/{runs}: first 200 after '
              f'{results[-1]["seconds"]:.2f} s (ZEO socket at '
              f'{results[-1]["zeo_socket"] or float("nan"):.2f} s)',
              flush=True)
    return results


# -- the report ---------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    return '–' if value is None or math.isnan(value) else f'{value:.{digits}f}'


def fmt_pct(value: float) -> str:
    return '–' if value is None or math.isnan(value) else f'{value:.0f}%'


def fmt_ratio(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return '–'
    mid = statistics.median(values)
    if len(values) == 1:
        return f'{mid:.2f}'
    return f'**{mid:.2f}** ({min(values):.2f}–{max(values):.2f})'


def fmt_statuses(runs: list[Run]) -> str:
    total: dict[int, int] = {}
    for r in runs:
        for s, n in r.statuses.items():
            total[s] = total.get(s, 0) + n
    errors = sum(
        sum(r.data.get('errors', {}).get(k, 0)
            for k in ('connect', 'read', 'write', 'timeout'))
        for r in runs
    )
    parts = [f'{s}: {n}' for s, n in sorted(total.items())]
    if errors:
        parts.append(f'socket errors: {errors}')
    return ', '.join(parts) or '–'


def ratios(runs: list[Run], app: str, other: str, scenario: str,
           rounds: int) -> list[float]:
    """Within-round ratios of 2xx/s, ``app`` / ``other``."""
    out = []
    for rnd in range(rounds):
        a = [r for r in runs if r.app == app and r.scenario == scenario
             and r.round == rnd]
        b = [r for r in runs if r.app == other and r.scenario == scenario
             and r.round == rnd]
        if a and b and b[0].ok_rps:
            out.append(a[0].ok_rps / b[0].ok_rps)
    return out


def report(runs: list[Run], args: Any, meta: dict) -> str:
    out = []
    out.append(f'# Benchmark {meta["date"]}\n')
    out.append(
        f'Package commit `{meta["commit"]}`{meta["dirty"]} (sources hash '
        f'`{meta["source_hash"]}`), {meta["versions"]}.  \n'
        f'{meta["cpus"]} CPUs; {meta["pinning"]}; gunicorn '
        f'`-w {args.workers} -k sync`; `wrk -t1 -c{args.connections}`; '
        f'{args.rounds} round(s) x {args.seconds:g} s per scenario and app, '
        f'order rotated per round; server_sync **{args.server_sync}** '
        f'(ours, peer, ceiling); {args.items} items + a counter. '
        f'Load average at the start {meta["load_start"]}, at the end '
        f'{meta.get("load_end", "?")}.\n'
    )
    if meta.get('cold'):
        secs = [c['seconds'] for c in meta['cold']]
        out.append(
            f'**Cold start** (`pserve development.ini`, ZEO autostarted, to '
            f'the first 200 on `/`): **{statistics.median(secs):.2f} s** '
            f'(median of {len(secs)}: '
            + ', '.join(f'{s:.2f}' for s in secs) + ' s).\n'
        )
    apps = [a for a in APPS if a in args.apps]
    out.append(
        '2xx/s, p50 and p99 are medians over rounds; ratios of 2xx/s are '
        'taken within each round: median **bold** (min–max). x ceiling: '
        'against the raw commit loop (the same add, or increment) by 2 '
        'processes, same round; 1p: by 1 process. Statuses: all rounds, '
        'drain included. Others on CPU 0 / 1: the share of the servers\' '
        'CPU / of wrk\'s CPU that other processes of this machine took '
        'during the run (median): the noise.\n'
    )
    out.append('| scenario | app | req/s | 2xx/s | x bare | x peer | '
               'x ceiling | p50 ms | p99 ms | statuses | check | '
               'others on CPU 0 / 1 |')
    out.append('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for scenario in args.scenarios:
        for app in apps:
            rs = [r for r in runs if r.app == app and r.scenario == scenario]
            if not rs:
                continue
            vs_bare = (fmt_ratio(ratios(runs, app, 'bare', scenario,
                                        args.rounds))
                       if app != 'bare' and 'bare' in apps else '')
            vs_peer = (fmt_ratio(ratios(runs, app, 'peer', scenario,
                                        args.rounds))
                       if app != 'peer' and 'peer' in apps else '')
            vs_ceil = ''
            if scenario in CEILING_KIND and app != 'bare':
                two = ratios(runs, app, 'ceiling-2p', scenario, args.rounds)
                one = ratios(runs, app, 'ceiling-1p', scenario, args.rounds)
                if two:
                    vs_ceil = fmt_ratio(two) + (
                        f'; 1p {median(one):.2f}' if one else '')
            fails = [r.check for r in rs if not r.check_ok]
            checks = [r.check for r in rs]
            check = (fails[0] if fails else
                     'ok' if all(c.startswith('ok') for c in checks) else
                     checks[0])
            out.append(
                f'| {scenario} | {app} | '
                f'{fmt(median([r.rps for r in rs]))} | '
                f'{fmt(median([r.ok_rps for r in rs]))} | {vs_bare} | '
                f'{vs_peer} | {vs_ceil} | '
                f'{fmt(median([r.p50 for r in rs]), 2)} | '
                f'{fmt(median([r.p99 for r in rs]), 2)} | '
                f'{fmt_statuses(rs)} | {check} | '
                f'{fmt_pct(median([r.other_cpu for r in rs]))} / '
                f'{fmt_pct(median([r.other_cpu1 for r in rs]))} |'
            )
        for procs in (1, 2):
            rs = [r for r in runs if r.app == f'ceiling-{procs}p'
                  and r.scenario == scenario]
            if rs:
                conflicts = sum(r.data['conflicts'] for r in rs)
                commits = sum(r.data['commits'] for r in rs)
                out.append(
                    f'| {scenario} | ceiling, {procs} process'
                    f'{"es" if procs > 1 else ""} '
                    f'({CEILING_KIND[scenario]}) | | '
                    f'{fmt(median([r.ok_rps for r in rs]))} | | | | | | '
                    f'commits: {commits}, conflicts: {conflicts} | | |'
                )
    if meta.get('memory'):
        out.append('\n**Worker memory** (RSS of each gunicorn worker after '
                   'the run, MiB):\n')
        out.append('| app | workers | mean | x peer |')
        out.append('|---|---|---|---|')
        peer = meta['memory'].get('peer')
        for app in apps:
            mem = meta['memory'].get(app)
            if not mem:
                continue
            mean = statistics.fmean(mem)
            vs = (f'{mean / statistics.fmean(peer):.2f}'
                  if peer and app != 'peer' else '')
            out.append(f'| {app} | {", ".join(f"{m:.1f}" for m in mem)} '
                       f'| {mean:.1f} | {vs} |')
    out.append('\n<details><summary>Every run</summary>\n')
    out.append('| round | scenario | app | 2xx/s | p50 ms | p99 ms | '
               'others on CPU 0 / 1 | check |')
    out.append('|---|---|---|---|---|---|---|---|')
    for r in sorted(runs, key=lambda r: (r.round, SCENARIOS.index(
            r.scenario), r.app)):
        out.append(f'| {r.round + 1} | {r.scenario} | {r.app} | '
                   f'{fmt(r.ok_rps)} | {fmt(r.p50, 2)} | {fmt(r.p99, 2)} | '
                   f'{fmt_pct(r.other_cpu)} / {fmt_pct(r.other_cpu1)} | '
                   f'{r.check} |')
    out.append('\n</details>\n')
    failed = [r for r in runs if not r.check_ok]
    out.append(f'Correctness: {"FAIL" if failed else "ok"}'
               + ''.join(f'\n- round {r.round + 1} {r.scenario} {r.app}: '
                         f'{r.check}' for r in failed) + '\n')
    return '\n'.join(out)


def metadata(args: Any, pin: Pinning) -> dict:
    def git(*argv: str) -> str:
        try:
            return subprocess.run(
                ['git', *argv], cwd=REPO, capture_output=True, text=True,
                timeout=20,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ''

    digest = hashlib.sha256()
    pkg = os.path.join(REPO, 'pyramid_zeostore')
    for dirpath, dirnames, filenames in sorted(os.walk(pkg)):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith('.py'):
                path = os.path.join(dirpath, name)
                digest.update(os.path.relpath(path, pkg).encode())
                with open(path, 'rb') as f:
                    digest.update(f.read())
    dirty = git('status', '--porcelain', '--', 'pyramid_zeostore')
    names = ('pyramid', 'pyramid_tm', 'pyramid_retry', 'pyramid_zodbconn',
             'ZODB', 'ZEO', 'gunicorn')
    versions = []
    for name in names:
        try:
            versions.append(f'{name} {importlib.metadata.version(name)}')
        except importlib.metadata.PackageNotFoundError:
            pass
    wrk = subprocess.run(['wrk', '--version'], capture_output=True,
                         text=True, timeout=20).stdout.split(' [')[0]
    versions.append(wrk.strip() or 'wrk')
    versions.append(f'Python {sys.version.split()[0]}')
    return {
        'date': time.strftime('%Y-%m-%d %H:%M'),
        'commit': git('rev-parse', '--short', 'HEAD') or '?',
        'dirty': (f' + uncommitted changes in pyramid_zeostore/ '
                  f'({len(dirty.splitlines())} files)' if dirty else ''),
        'source_hash': digest.hexdigest()[:12],
        'versions': ', '.join(versions),
        'cpus': os.cpu_count(),
        'load_start': loadavg(),
        'pinning': ('runzeo + gunicorn on CPU 0, wrk on CPU 1' if
                    pin.enabled else 'no CPU pinning'),
    }


def loadavg() -> str:
    return ' '.join(f'{v:.2f}' for v in os.getloadavg())


def results_path() -> str:
    folder = os.path.join(HERE, 'results')
    os.makedirs(folder, exist_ok=True)
    base = time.strftime('%Y-%m-%d')
    path = os.path.join(folder, f'{base}.md')
    n = 2
    while os.path.exists(path):
        path = os.path.join(folder, f'{base}-{n}.md')
        n += 1
    return path


# -- main ---------------------------------------------------------------------


def run_entry(entry: Any, scenario: str, rnd: int, stacks: dict,
              args: Any, pin: Pinning, tmp: str) -> list[Run]:
    """Measure one app (a Stack) or the ceiling on ``scenario``."""
    runs = []
    if entry == 'ceiling':
        for procs in (1, 2):
            data = run_ceiling(stacks['ceiling'], CEILING_KIND[scenario],
                               procs, args.seconds, args, pin)
            run = Run(f'ceiling-{procs}p', scenario, rnd, args.seconds, data)
            runs.append(run)
            print(f'round {rnd + 1} {scenario:13} {run.app:10} '
                  f'{run.ok_rps:8.1f} commits/s, {data["conflicts"]} '
                  'conflicts', flush=True)
        return runs
    def our_pids() -> list[int]:
        return [pid for s in stacks.values() for pid in s.pids()]

    run = measure(entry, scenario, rnd, args.seconds, args, pin, tmp,
                  our_pids)
    print(f'round {rnd + 1} {scenario:13} {run.app:10} '
          f'{run.rps:8.1f} req/s {run.ok_rps:8.1f} 2xx/s '
          f'p50 {run.p50:6.2f} p99 {run.p99:7.2f} ms '
          f'others {fmt_pct(run.other_cpu)}/{fmt_pct(run.other_cpu1)} '
          'of CPU 0/1  '
          f'{fmt_statuses([run])}  {run.check}', flush=True)
    return [run]


def parse_args(argv: list[str] | None) -> Any:
    p = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument('--seconds', type=float, default=10.0,
                   help='measured seconds per scenario, app and round '
                   '(default 10)')
    p.add_argument('--rounds', type=int, default=3,
                   help='rounds, app order rotated in each (default 3)')
    p.add_argument('--scenarios', nargs='+', default=list(SCENARIOS),
                   choices=SCENARIOS)
    p.add_argument('--apps', nargs='+', default=list(APPS), choices=APPS)
    p.add_argument('--server-sync', choices=('on', 'off'), default='off',
                   help='server_sync of ours, the peer and the ceiling '
                   '(default off, as deploy/production.ini)')
    p.add_argument('--warmup', type=float, default=3.0,
                   help='seconds of read-item per app before measuring, '
                   'then 1 s of each other scenario (default 3)')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--connections', type=int, default=8)
    p.add_argument('--items', type=int, default=seed.ITEMS)
    p.add_argument('--no-ceiling', dest='ceiling', action='store_false',
                   help='skip the raw commit ceiling')
    p.add_argument('--cold-start-runs', type=int, default=3,
                   help='cold starts timed before the load (default 3; '
                   '0 skips)')
    p.add_argument('--cold-start-only', action='store_true',
                   help='time the cold start(s) and stop')
    p.add_argument('--no-pin', dest='pin', action='store_false',
                   help='no taskset pinning')
    p.add_argument('--smoke', action='store_true',
                   help='CI: every app and scenario, 1 round of 0.5 s, '
                   'one cold start; checks correctness, never speed')
    p.add_argument('--output', help='the results file (default '
                   'benchmarks/results/<date>.md; --smoke writes none '
                   'unless given)')
    p.add_argument('--json', help='also write every run as JSON here')
    p.add_argument('--keep', action='store_true',
                   help='keep the temp dir (logs, Data.fs)')
    args = p.parse_args(argv)
    if args.smoke:
        args.seconds, args.rounds, args.warmup = 0.5, 1, 0.0
        args.cold_start_runs = min(args.cold_start_runs, 1)
    if args.seconds <= 0 or args.rounds < 1:
        p.error('--seconds must be > 0 and --rounds >= 1')
    if args.cold_start_only:
        args.cold_start_runs = max(1, args.cold_start_runs)
    elif shutil.which('wrk') is None:
        p.error('wrk is not installed: bash .ci/install-bench '
                '(apt-get install wrk)')
    if ('peer' in args.apps and not args.cold_start_only
            and importlib.util.find_spec('pyramid_zodbconn') is None):
        p.error("the peer needs pyramid_zodbconn: pip install -e '.[bench]' "
                '(or leave it out: --apps ours bare)')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    pin = Pinning(args.pin)
    tmp = tempfile.mkdtemp(prefix='zeostore-bench-')
    started = time.monotonic()
    stacks: dict[str, Stack] = {}
    runs: list[Run] = []
    meta = metadata(args, pin)
    try:
        if args.cold_start_runs:
            meta['cold'] = cold_starts(tmp, args.cold_start_runs)
        if args.cold_start_only:
            return 0
        print(f'# {meta["pinning"]}; temp dir {tmp}', flush=True)
        for app in args.apps:
            stacks[app] = Stack(app, tmp, args, pin)
        want_ceiling = args.ceiling and any(
            s in CEILING_KIND for s in args.scenarios)
        if want_ceiling:
            stacks['ceiling'] = Stack('ceiling', tmp, args, pin)
        with ThreadPoolExecutor(len(stacks)) as pool:
            list(pool.map(lambda s: s.start(serve=s.app != 'ceiling'),
                          stacks.values()))
        print(f'# started {", ".join(stacks)} in '
              f'{time.monotonic() - started:.1f} s', flush=True)
        apps = [stacks[a] for a in args.apps]
        if args.warmup:
            for stack in apps:
                run_wrk(stack, 'read-item', args.warmup, args, pin, '-')
                for scenario in args.scenarios:
                    if scenario != 'read-item':
                        run_wrk(stack, scenario, 1.0, args, pin, '-')
        for rnd in range(args.rounds):
            for si, scenario in enumerate(args.scenarios):
                entries: list[Any] = list(apps)
                if want_ceiling and scenario in CEILING_KIND:
                    entries.append('ceiling')
                k = (rnd + si) % len(entries)
                order = entries[k:] + entries[:k]

                def one(entry: Any, rnd: int = rnd,
                        scenario: str = scenario) -> list[Run]:
                    return run_entry(entry, scenario, rnd, stacks, args,
                                     pin, tmp)

                if args.smoke:  # no speed measured: all at once
                    with ThreadPoolExecutor(len(order)) as pool:
                        for done in pool.map(one, order):
                            runs.extend(done)
                else:
                    for entry in order:
                        runs.extend(one(entry))
        meta['memory'] = {s.app: s.worker_rss() for s in apps}
        meta['load_end'] = loadavg()
    finally:
        for stack in stacks.values():
            stack.stop()
        if args.keep:
            print(f'kept {tmp}')
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - started
    text = report(runs, args, meta)
    text += f'\nTotal time {elapsed:.0f} s.\n'
    print('\n' + text, flush=True)
    path = args.output or (None if args.smoke else results_path())
    if path:
        with open(path, 'w') as f:
            f.write(text)
        print(f'written to {os.path.relpath(path)}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump([r.__dict__ for r in runs], f, indent=1)
    failed = [r for r in runs if not r.check_ok]
    if args.smoke:
        print(f'smoke: {len(runs)} runs in {elapsed:.1f} s, '
              f'{"FAIL" if failed else "ok"}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
