"""Hot spots and low-conflict writes under gunicorn: ours vs. the peer.

Starts, for each case, a real ``runzeo`` (Unix socket in a temp dir) and
``gunicorn --paste <ini> -w N`` (sync workers on 127.0.0.1):

* ``ours``    pyramid_zeostore's ready app with its default settings;
* ``nolock``  the same with ``zeostore.conflict_lock = false`` (backoff and
  retries only);
* ``peer``    pyramid_zodbconn + pyramid_tm + pyramid_retry serving the same
  views (``benchmarks/peer_app.py``), ``retry.attempts`` as ours
  (needs ``pip install pyramid_zodbconn``).

and drives three workloads with N concurrent clients (threads, one
``http.client`` connection each; gunicorn's sync workers close it after
every answer) for a fixed time each:

* ``counter`` every request is ``POST /counter/@@increment``: one int
  attribute, the worst hot spot;
* ``adds``    every request ``POST``s a new, distinct child to ``/adds``:
  writes that seldom conflict (BTree bucket splits), where a lock can
  only cost;
* ``mixed``   half the clients do each: does a hot spot stall the rest?

It prints, per case and workload, the requests, 2xx, 409, 5xx and other
answers (connection errors count as other), 2xx per second, p50/p99
latency, server CPU time per 2xx, how many retries pyramid_retry made
after the 1st/2nd/... attempt (a one-byte probe per retry, see
``peer_app.count_retries``), and checks the end state: the counter
equals the number of 2xx increments, the folder holds every acknowledged
child. Then the ratios of 2xx/s: ours/peer and ours/nolock (what the lock
costs or brings). It exits 1 if
``ours`` or ``nolock`` answered a 5xx or lost or doubled a write.

The cases take turns in slices of ``--slice`` seconds (their order
rotated every slice) until each had ``--duration`` seconds, so that
background load on a noisy machine hits them alike; compare the ratios,
absolute numbers only mean something on one machine.

Usage (from the repository root, with the virtualenv's Python)::

    .venv/bin/python benchmarks/contention.py                # 4x4, ~4 min
    .venv/bin/python benchmarks/contention.py --clients 4 16 --duration 30
    .venv/bin/python benchmarks/contention.py --duration 5 --cases ours peer
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
sys.path.insert(0, HERE)

from common import (  # noqa: E402
    BASIC,
    BENCH_PASSWORD,
    BENCH_USER,
    LOGGING,
    SECRET,
    ZEO_CONF,
    connects,
    free_port,
    wait_for,
)

CASES = ('ours', 'nolock', 'peer')
WORKLOADS = ('counter', 'adds', 'mixed')
HEADERS = {
    'Content-Type': 'application/json',
    'Accept': 'application/json',
    'Authorization': BASIC,
}

class Stack:
    """One case: a runzeo and a gunicorn serving it, stopped by pid."""

    def __init__(self, case: str, root: str, workers: int, attempts: int):
        self.case = case
        self.dir = os.path.join(root, f'{case}-w{workers}')
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, 'zeo.sock')
        self.port = free_port()
        self.workers = workers
        self.attempts = attempts
        self.procs: list[subprocess.Popen] = []
        self.gunicorn_log = os.path.join(self.dir, 'gunicorn.log')
        self.retry_log = os.path.join(self.dir, 'retries.log')
        open(self.retry_log, 'wb').close()

    def ini(self) -> str:
        if self.case == 'peer':
            app = [
                'paste.app_factory = peer_app:main',
                f'zodbconn.uri = zeo://{self.sock}',
                f'retry.attempts = {self.attempts}',
            ]
        else:
            # egg:pyramid_zeostore's main, plus the retry probe
            app = [
                'paste.app_factory = peer_app:zeostore_main',
                f'zodb_uri = zeo://{self.sock}',
                f'zeostore.secret = {SECRET}',
            ]
            if self.case == 'nolock':
                app.append('zeostore.conflict_lock = false')
            if self.attempts != 3:
                app.append(f'retry.attempts = {self.attempts}')
        app.append(f'bench.retry_log = {self.retry_log}')
        path = os.path.join(self.dir, 'app.ini')
        with open(path, 'w') as f:
            f.write('[app:main]\n' + '\n'.join(app) + '\n' + LOGGING)
        return path

    def start(self) -> None:
        conf = os.path.join(self.dir, 'zeo.conf')
        with open(conf, 'w') as f:
            f.write(ZEO_CONF.format(var=self.dir))
        self._spawn(
            [sys.executable, '-m', 'ZEO.runzeo', '-C', conf],
            os.path.join(self.dir, 'runzeo.out'),
        )
        wait_for(
            lambda: connects(self.sock, socket.AF_UNIX), 30, 'runzeo'
        )
        # Make the ZODB root record before N workers start: ZODB.DB()
        # writes it on an empty storage, and N processes doing that at
        # once conflict and fail to boot (a start-up race, not what this
        # benchmark measures).
        # The user the writes authenticate as, in the same step.
        import ZEO

        from pyramid_zeostore.app.users import add_user

        db = ZEO.DB(self.sock)
        try:
            add_user(db, BENCH_USER, BENCH_PASSWORD, 'editor')
        finally:
            db.close()
        self._spawn(
            [
                os.path.join(BIN, 'gunicorn'),
                '--paste', self.ini(),
                '--pythonpath', HERE,
                '-w', str(self.workers),
                '-k', 'sync',
                '-b', f'127.0.0.1:{self.port}',
                '--timeout', '120',
                '--graceful-timeout', '5',
                '--backlog', '256',
                '--no-control-socket',
            ],
            self.gunicorn_log,
        )
        wait_for(
            lambda: connects(('127.0.0.1', self.port)), 60, 'gunicorn'
        )

    def _spawn(self, args: list[str], log: str) -> None:
        with open(log, 'ab') as out:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        self.procs.append(proc)

    def stop(self) -> None:
        # gunicorn first (it has children: signal its session), then ZEO.
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        self.procs = []

    def tracebacks(self) -> list[str]:
        """Tracebacks gunicorn logged (500s); empty if none."""
        try:
            with open(self.gunicorn_log, errors='replace') as f:
                text = f.read()
        except OSError:
            return []
        return re.findall(
            r'(Traceback \(most recent call last\):.*?\n\S[^\n]*)',
            text,
            re.S,
        )

    # -- one request, outside the measured load --------------------------

    def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=60)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=HEADERS)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw or b'{}')
        except ValueError:
            return resp.status, {'raw': raw[:200].decode(errors='replace')}

    def setup_content(self) -> None:
        for name, kind in (('counter', 'item'), ('adds', 'folder')):
            for _ in range(20):  # the first writes may meet bootstrap
                status, body = self.call(
                    'POST', '/', {'name': name, 'type': kind}
                )
                if status in (201, 409) and (
                    status == 201 or 'exists' in body.get('message', '')
                ):
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f'{self.case}: cannot create /{name}')

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by runzeo, the gunicorn
        master and its workers."""
        pids = {p.pid for p in self.procs}
        ticks = 0
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:  # gone, or not Linux
                continue
            # fields[1] is the ppid, [11] utime, [12] stime (in ticks)
            if int(entry) in pids or int(fields[1]) in pids:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf('SC_CLK_TCK')

    def retries_mark(self) -> int:
        return os.path.getsize(self.retry_log)

    def retries_since(self, mark: int) -> dict[int, int]:
        """{failed attempt number: retries} logged after ``mark``."""
        with open(self.retry_log, 'rb') as f:
            f.seek(mark)
            data = f.read()
        counts: dict[int, int] = {}
        for byte in data:
            counts[byte - 48] = counts.get(byte - 48, 0) + 1
        return counts

    def counter(self) -> int:
        status, body = self.call('GET', '/counter?format=json')
        assert status == 200, (status, body)
        return body['attributes'].get('counter', 0)

    def reset_counter(self) -> None:
        for _ in range(20):
            status, body = self.call('PATCH', '/counter', {'counter': 0})
            if status == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f'{self.case}: cannot reset the counter')

    def children(self) -> int:
        status, body = self.call('GET', '/adds?format=json&size=0')
        assert status == 200, (status, body)
        return body['length']


@dataclass
class Result:
    case: str
    workload: str
    clients: int
    workers: int = 0
    duration: float = 0.0
    statuses: dict = field(default_factory=dict)
    errors: int = 0
    latencies: list = field(default_factory=list)
    ok_kind: dict = field(default_factory=dict)  # 2xx per request kind
    checks: dict = field(default_factory=dict)  # what: (found, expected)
    retries: dict = field(default_factory=dict)
    cpu: float = 0.0  # server-side CPU seconds

    @property
    def consistent(self) -> bool:
        return all(found == exp for found, exp in self.checks.values())

    @property
    def cpu_ms_per_ok(self) -> float:
        return 1000 * self.cpu / self.ok if self.ok else float('nan')

    def count(self, pred) -> int:
        return sum(n for s, n in self.statuses.items() if pred(s))

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.errors

    @property
    def ok(self) -> int:
        return self.count(lambda s: 200 <= s < 300)

    @property
    def conflicts(self) -> int:
        return self.statuses.get(409, 0)

    @property
    def server_errors(self) -> int:
        return self.count(lambda s: s >= 500)

    @property
    def other(self) -> int:
        return self.requests - self.ok - self.conflicts - self.server_errors

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.duration if self.duration else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float('nan')
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000


def drive(
    stack: Stack, workload: str, clients: int, duration: float, tag: str
) -> Result:
    """``clients`` threads hammer ``stack`` for ``duration`` seconds."""
    result = Result(stack.case, workload, clients)
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)
    deadline_box: list[float] = []

    def client(number: int) -> None:
        statuses: dict[int, int] = {}
        latencies: list[float] = []
        errors = 0
        kind = workload
        if workload == 'mixed':  # half the clients each
            kind = 'counter' if number % 2 == 0 else 'adds'
        ok = 0
        conn = http.client.HTTPConnection(
            '127.0.0.1', stack.port, timeout=max(60.0, duration)
        )
        seq = 0
        start_line.wait()
        deadline = deadline_box[0]
        try:
            while time.monotonic() < deadline:
                seq += 1
                if kind == 'counter':
                    path = '/counter/@@increment'
                    body = b'{"attribute": "counter", "by": 1}'
                else:
                    path = '/adds'
                    body = json.dumps(
                        {'name': f'{tag}-{number}-{seq}', 'type': 'item'}
                    ).encode()
                t0 = time.monotonic()
                try:
                    conn.request('POST', path, body=body, headers=HEADERS)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    if resp.will_close:
                        conn.close()  # reopened by the next request
                except (OSError, http.client.HTTPException):
                    errors += 1
                    conn.close()
                    continue
                latencies.append(time.monotonic() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                ok += 200 <= status < 300
        finally:
            conn.close()
            with lock:
                result.ok_kind[kind] = result.ok_kind.get(kind, 0) + ok
                for s, n in statuses.items():
                    result.statuses[s] = result.statuses.get(s, 0) + n
                result.latencies.extend(latencies)
                result.errors += errors

    threads = [
        threading.Thread(target=client, args=(i,), daemon=True)
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    deadline_box.append(t0 + duration)
    start_line.wait()
    for t in threads:
        # Each client stops sending at the deadline; a request already
        # sent may take up to its own timeout.
        t.join(duration + 90)
    result.duration = time.monotonic() - t0
    return result


def fmt_row(r: Result) -> str:
    check = ' '.join(
        f'{what} {found}/{expected}'
        for what, (found, expected) in r.checks.items()
        if expected
    ) + (' ok' if r.consistent else ' WRONG')
    if r.workload == 'mixed':
        check = ', '.join(
            f'{kind} {n / r.duration:.1f}/s' for kind, n in
            sorted(r.ok_kind.items())
        ) + '; ' + check
    retries = '/'.join(
        str(r.retries.get(i, 0)) for i in range(max(r.retries, default=0) + 1)
    ) or '0'
    return (
        f'{r.case:7} {r.workload:8} {r.clients:3} {r.requests:7} '
        f'{r.ok:7} {r.conflicts:5} {r.server_errors:5} {r.other:5} '
        f'{r.ok_per_s:8.1f} {r.pct(0.5):8.1f} {r.pct(0.99):8.1f} '
        f'{r.cpu_ms_per_ok:6.2f} {retries:>11}  {check}'
    )


HEADER = (
    f'{"case":7} {"workload":8} {"cli":>3} {"reqs":>7} {"2xx":>7} '
    f'{"409":>5} {"5xx":>5} {"other":>5} {"2xx/s":>8} {"p50 ms":>8} '
    f'{"p99 ms":>8} {"cpu/ok":>6} {"retries":>11}  found/acknowledged'
)


def ratio(a: Result | None, b: Result | None) -> str:
    if not a or not b or not b.ok_per_s:
        return 'n/a'
    return f'{a.ok_per_s / b.ok_per_s:.3f}'


def merge(total: Result, part: Result) -> None:
    total.duration += part.duration
    for s, n in part.statuses.items():
        total.statuses[s] = total.statuses.get(s, 0) + n
    total.errors += part.errors
    for kind, n in part.ok_kind.items():
        total.ok_kind[kind] = total.ok_kind.get(kind, 0) + n
    total.cpu += part.cpu
    total.latencies.extend(part.latencies)
    for a, n in part.retries.items():
        total.retries[a] = total.retries.get(a, 0) + n


def measure(
    stacks: list[Stack], workload: str, clients: int, args, tag: str
) -> dict[str, Result]:
    """Run ``workload`` on every stack for ``args.duration`` seconds each,
    in slices of ``args.slice`` seconds that alternate between the stacks
    (their order rotated every slice), so background load hits all alike.
    """
    totals = {s.case: Result(s.case, workload, clients) for s in stacks}
    slices = max(1, round(args.duration / args.slice))
    length = args.duration / slices
    children = {}
    for stack in stacks:
        stack.reset_counter()
        children[stack.case] = stack.children()
    for i in range(slices):
        k = i % len(stacks)
        for stack in stacks[k:] + stacks[:k]:
            mark, cpu = stack.retries_mark(), stack.cpu_seconds()
            part = drive(stack, workload, clients, length, f'{tag}s{i}')
            part.cpu = stack.cpu_seconds() - cpu
            part.retries = stack.retries_since(mark)
            merge(totals[stack.case], part)
    for stack in stacks:
        # Every acknowledged write is there, exactly once.
        total = totals[stack.case]
        total.checks['counter'] = (
            stack.counter(), total.ok_kind.get('counter', 0)
        )
        total.checks['children'] = (
            stack.children() - children[stack.case],
            total.ok_kind.get('adds', 0),
        )
    return totals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--duration', type=float, default=20.0,
                        help='seconds per case and workload (default 20)')
    parser.add_argument('--slice', type=float, default=2.0,
                        help='the cases take turns every SLICE seconds '
                        '(default 2)')
    parser.add_argument('--workers', type=int, nargs='+', default=[4],
                        help='gunicorn worker counts (default 4)')
    parser.add_argument('--clients', type=int, nargs='+', default=[4],
                        help='concurrent client counts (default 4)')
    parser.add_argument('--cases', nargs='+', default=list(CASES),
                        choices=CASES)
    parser.add_argument('--workloads', nargs='+', default=list(WORKLOADS),
                        choices=WORKLOADS)
    parser.add_argument('--attempts', type=int, default=3,
                        help='retry.attempts for every case (default 3)')
    parser.add_argument('--warmup', type=float, default=2.0,
                        help='seconds of unmeasured adds per case first')
    parser.add_argument('--keep', action='store_true',
                        help='keep the temp dir (logs, Data.fs)')
    parser.add_argument('--json', metavar='FILE',
                        help='also write every result as JSON')
    args = parser.parse_args(argv)
    if 'peer' in args.cases and importlib.util.find_spec(
        'pyramid_zodbconn'
    ) is None:
        parser.error('the peer needs pyramid_zodbconn: pip install '
                     'pyramid_zodbconn (or leave out --cases peer)')

    root = tempfile.mkdtemp(prefix='zeostore-bench-')
    results: list[Result] = []
    stacks: list[Stack] = []
    print(f'# {os.cpu_count()} CPUs, {args.duration:g}s per run in '
          f'{args.slice:g}s slices, retry.attempts={args.attempts}, '
          f'temp dir {root}', flush=True)
    print('# retries: pyramid_retry retries after attempt 1/2/...; '
          'cpu/ok: server CPU ms per 2xx; found/acknowledged: counter '
          'value, children added / 2xx answers', flush=True)
    try:
        for workers in args.workers:
            stacks = [
                Stack(case, root, workers, args.attempts)
                for case in args.cases
            ]
            for stack in stacks:
                stack.start()
                stack.setup_content()
                if args.warmup:
                    drive(stack, 'adds', 2, args.warmup, 'warm')
            print(f'\n## {workers} gunicorn workers\n{HEADER}', flush=True)
            ratios = []
            for clients in args.clients:
                for workload in args.workloads:
                    tag = f'w{workers}c{clients}{workload}'
                    totals = measure(stacks, workload, clients, args, tag)
                    for stack in stacks:
                        r = totals[stack.case]
                        r.workers = workers
                        results.append(r)
                        print(fmt_row(r), flush=True)
                    ratios.append(
                        f'{workload:8} {clients:3} clients: ours/peer '
                        f'{ratio(totals.get("ours"), totals.get("peer"))}'
                        '  ours/nolock '
                        f'{ratio(totals.get("ours"), totals.get("nolock"))}'
                        '  nolock/peer '
                        f'{ratio(totals.get("nolock"), totals.get("peer"))}'
                    )
            for stack in stacks:
                tbs = stack.tracebacks()
                if tbs:
                    kinds: dict[str, int] = {}
                    for tb in tbs:
                        kind = tb.rsplit('\n', 1)[-1].split(':', 1)[0]
                        kinds[kind] = kinds.get(kind, 0) + 1
                    print(f'\n{stack.case}: gunicorn logged {len(tbs)} '
                          f'traceback(s): {kinds}; the last ends:\n'
                          + '\n'.join(tbs[-1].splitlines()[-3:]))
            for stack in stacks:
                stack.stop()
            stacks = []
            print(f'\n## ratios of 2xx/s, {workers} workers')
            print('\n'.join(ratios), flush=True)
    finally:
        for stack in stacks:
            stack.stop()
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(
                    [
                        {
                            'case': r.case, 'workload': r.workload,
                            'workers': r.workers, 'clients': r.clients,
                            'duration': r.duration,
                            'requests': r.requests, 'ok': r.ok,
                            'conflicts': r.conflicts,
                            'server_errors': r.server_errors,
                            'other': r.other, 'ok_per_s': r.ok_per_s,
                            'p50_ms': r.pct(0.5), 'p99_ms': r.pct(0.99),
                            'ok_kind': r.ok_kind, 'checks': r.checks,
                            'retries': r.retries,
                            'cpu_ms_per_ok': r.cpu_ms_per_ok,
                        }
                        for r in results
                    ],
                    f, indent=1,
                )
        if args.keep:
            print(f'kept {root}')
        else:
            shutil.rmtree(root, ignore_errors=True)
    bad = any(
        r.server_errors or not r.consistent
        for r in results if r.case != 'peer'
    )
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
