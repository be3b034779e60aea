"""Scale: a Folder of 1,000,000 items against one of 1,000.

Builds two folders of small persistent ``Item`` objects, each in its own
FileStorage in a temp dir (``--small`` items, 1,000 by default, and
``--items``, 1,000,000 by default), and measures on each:

* ``folder[name]``: random existing names, many lookups;
* ``len(folder)``;
* a page of 50 from the middle, two ways: positional,
  ``folder.page(start=n // 2, size=50)``, and keyset,
  ``folder.page(after=<the name before it>, size=50)`` (same page).

first on the FileStorage opened in this process, then through a real ZEO
server (``python -m ZEO.runzeo -C zeo.conf`` on a Unix socket in the temp
dir, serving both files; stopped by its pid at the end). Each operation
is timed in two modes:

* ``warm``: everything the operation touches is already in the
  connection's object cache (one untimed pass first; the cache is made
  large enough to hold it);
* ``cold``: before each timed operation the connection cache is
  minimised (every object is a ghost again, the folder included) and,
  through ZEO, the client cache is cleared too, so every object the
  operation needs is loaded from the server. (A FileStorage reads the
  file, which sits in the OS page cache.)

For each it prints the time per operation (cold: the median; warm: the
best round, as ``timeit`` does, since a round lasts microseconds to
milliseconds and a busy machine only ever adds to it), the objects loaded
per operation (``Connection.getTransferCounts``) and the ratio of the
big folder to the small one, against the target of issue 7 (each at
most 2x the time at 1,000 items). The two folders are open at once and
take turns, three slices per figure, so that a change in the machine's
load hits both alike.

The big folder is built in bounded memory by a child process: items are
added with ``Folder.add(..., send_events=False)``, committed every
``--batch`` (10,000) items, then ``conn.cacheMinimize()``; the child
reports its build time and peak RSS (``resource.getrusage``).

Usage (from the repository root, with the virtualenv's Python)::

    .venv/bin/python benchmarks/scale.py                 # 1,000,000 items
    .venv/bin/python benchmarks/scale.py --items 20000 --budget 0.2  # 8 s
    .venv/bin/python benchmarks/scale.py --no-zeo --json scale.json

Every wait is bounded (``--budget`` seconds of timing per figure, both
folders together, but at least one operation per slice; a timeout on
the build and on the server's start); the exit status is 1 if a result
is wrong (a missing name, a wrong length, the two page forms
disagreeing), not when a target is missed.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import json
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
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from pyramid_zeostore.zeoserver import stop_process

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import connects  # noqa: E402  (benchmarks/common.py)

PAGE = 50
TARGET = 2.0
SAMPLE = 2_000  # distinct random names looked up
ZEO_CONF = """\
<zeo>
  address {dir}/zeo.sock
  read-only false
  pid-filename {dir}/zeo.pid
</zeo>
<filestorage small>
  path {dir}/small.fs
</filestorage>
<filestorage big>
  path {dir}/big.fs
</filestorage>
<eventlog>
  level WARNING
  <logfile>
    path {dir}/zeo.log
  </logfile>
</eventlog>
"""


def name_of(i: int) -> str:
    return f'item-{i:07d}'


# -- building (in a child process) -------------------------------------------


def build(path: str, count: int, batch: int) -> dict[str, Any]:
    """Make ``path`` a FileStorage whose root['folder'] holds ``count``
    Items; commit every ``batch`` and empty the cache in between."""
    from pyramid_zeostore.app.content import Item
    from pyramid_zeostore.folder import Folder

    t0 = time.perf_counter()
    db = ZODB.DB(FileStorage(path, create=True), cache_size=batch)
    tm = transaction.TransactionManager(explicit=True)
    conn = db.open(tm)
    tm.begin()
    folder = conn.root()['folder'] = Folder()
    tm.commit()
    rss_first = None
    for first in range(0, count, batch):
        tm.begin()
        for i in range(first, min(count, first + batch)):
            folder.add(name_of(i), Item(title=f'Item {i}'),
                       send_events=False)
        tm.commit()
        conn.cacheMinimize()
        if rss_first is None:
            rss_first = _peak_rss_kib()
    committed = time.perf_counter() - t0
    conn.close()
    db.close()  # writes the .index, so opening it later is quick
    return {
        'items': count,
        'batch': batch,
        'commit_s': committed,
        'total_s': time.perf_counter() - t0,
        'peak_rss_first_batch_mib': (rss_first or 0) / 1024,
        'peak_rss_mib': _peak_rss_kib() / 1024,
        'file_mib': os.path.getsize(path) / 2**20,
    }


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, Linux


def build_in_child(path: str, count: int, batch: int,
                   timeout: float) -> dict[str, Any]:
    """Run :func:`build` in a fresh interpreter: its peak RSS is the
    build's alone."""
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), '--build-into', path,
         '--items', str(count), '--batch', str(batch)],
        stdout=subprocess.PIPE, check=True, timeout=timeout, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- measuring ---------------------------------------------------------------


@dataclass
class Figure:
    us: float  # microseconds per operation: cold median, warm best
    loads: float  # objects loaded per operation, mean
    reps: int  # operations (cold) or rounds (warm) timed


OPS = ('lookup', 'len', 'page_start', 'page_after')
LABELS = {
    'lookup': 'folder[name]',
    'len': 'len(folder)',
    'page_start': 'page(start=n/2, size=50)',
    'page_after': 'page(after=name, size=50)',
}
# (cold operations, warm calls per round, warm rounds) per operation
PLAN = {
    'lookup': (1_000, SAMPLE, 9),
    'len': (300, 5_000, 9),
    'page_start': (21, 1, 21),
    'page_after': (300, 200, 9),
}
SLICES = 3  # small and big take turns this many times per figure
WARM_SPAN = 0.25  # seconds of warm rounds per slice, at least


class Subject:
    """One folder on a connection of its own, and the operations timed
    on it."""

    def __init__(self, db: Any, count: int, clear: Callable[[], None],
                 seed: int, where: str) -> None:
        self.where = where
        self.count = count
        self.clear = clear  # empties the storage's cache, if it has one
        self.tm = transaction.TransactionManager(explicit=True)
        self.conn = db.open(self.tm)
        self.tm.begin()
        folder = self.folder = self.conn.root()['folder']
        rng = random.Random(seed)
        names = self.names = [
            name_of(i) for i in rng.sample(range(count), min(SAMPLE, count))
        ]
        mid = count // 2
        after = name_of(mid - 1)

        def lookup(i: int) -> Any:
            return folder[names[i % len(names)]]

        self.ops = {
            'lookup': lookup,
            'len': lambda i: len(folder),
            'page_start': lambda i: folder.page(start=mid, size=PAGE),
            'page_after': lambda i: folder.page(after=after, size=PAGE),
        }
        self.times: list[float] = []
        self.loads = 0
        self.done = 0

    def check(self, errors: list[str]) -> None:
        """Append to ``errors`` what the folder answers wrong."""
        folder, where = self.folder, self.where
        if len(folder) != self.count:
            errors.append(f'{where}: len {len(folder)} != {self.count}')
        for name in self.names:
            if folder[name].__name__ != name:
                errors.append(f'{where}: folder[{name!r}] is wrong')
                break
        mid = self.count // 2
        expected = [name_of(i) for i in range(mid, mid + PAGE)
                    if i < self.count]
        for op in ('page_start', 'page_after'):
            got = [name for name, _ in self.ops[op](0)]
            if got != expected:
                errors.append(f'{where}: {op} gave {got[:2]}...')

    def reset(self) -> None:
        self.times, self.loads, self.done = [], 0, 0
        self.conn.getTransferCounts(True)

    def cold(self, op: str, reps: int, budget: float) -> None:
        """Time ``reps`` calls of ``op`` (at most ``budget`` seconds),
        each alone after emptying the caches."""
        conn, call = self.conn, self.ops[op]
        deadline = time.perf_counter() + budget
        for _ in range(reps):
            conn.cacheMinimize()
            self.clear()
            conn.getTransferCounts(True)
            t0 = time.perf_counter_ns()
            call(self.done)
            t1 = time.perf_counter_ns()
            self.loads += conn.getTransferCounts(True)[0]
            self.times.append(t1 - t0)
            self.done += 1
            if time.perf_counter() > deadline:
                break

    def warm(self, op: str, inner: int, rounds: int, budget: float) -> None:
        """Time rounds of ``inner`` calls of ``op``: at least ``rounds``
        and for at least ``WARM_SPAN`` seconds (a quiet moment on a busy
        machine), at most ``budget`` seconds. The first round of a
        figure is untimed (it loads what they touch)."""
        call = self.ops[op]
        if not self.times and not self.done:
            for i in range(inner):
                call(i)
            self.conn.getTransferCounts(True)
        now = time.perf_counter()
        span, deadline = now + min(WARM_SPAN, budget), now + budget
        for n in itertools.count():
            t0 = time.perf_counter_ns()
            for i in range(inner):
                call(i)
            self.times.append((time.perf_counter_ns() - t0) / inner)
            now = time.perf_counter()
            if now > deadline or (n + 1 >= rounds and now > span):
                break
        self.loads += self.conn.getTransferCounts(True)[0]
        self.done += 1  # marks the warm-up as done

    def figure(self, per: int, best: bool) -> Figure:
        stat = min if best else statistics.median
        return Figure(stat(self.times) / 1000, self.loads / per,
                      len(self.times))

    def close(self) -> None:
        self.tm.abort()
        self.conn.close()


def measure(subjects: dict[str, Subject], budget: float,
            errors: list[str]) -> dict[str, dict[tuple[str, str], Figure]]:
    """Every figure, cold then warm; for each, the folders take turns
    (``SLICES`` slices, order rotated) so that a change in the machine's
    load hits both alike. ``budget``: seconds per figure, all folders."""
    for subject in subjects.values():
        subject.check(errors)
    figures: dict[str, dict[tuple[str, str], Figure]] = {
        label: {} for label in subjects}
    order = list(subjects)
    chunk = budget / SLICES / len(subjects)
    for mode in ('cold', 'warm'):
        for subject in subjects.values():
            subject.conn.cacheMinimize()
            subject.clear()
        for op in OPS:
            cold_reps, inner, rounds = PLAN[op]
            gc.collect()
            for subject in subjects.values():
                subject.reset()
            for n in range(SLICES):
                for label in order[n % 2:] + order[:n % 2]:
                    if mode == 'cold':
                        subjects[label].cold(
                            op, -(-cold_reps // SLICES), chunk)
                    else:
                        subjects[label].warm(
                            op, inner, -(-rounds // SLICES), chunk)
            for label, subject in subjects.items():
                if mode == 'cold':
                    per = len(subject.times)
                else:
                    per = len(subject.times) * inner
                figures[label][op, mode] = subject.figure(
                    per, best=mode == 'warm')
    return figures


def measure_storages(open_storage: Callable[[str], tuple[Any, Any]],
                     where: str, sizes: dict[str, int], cache: int,
                     seed: int, budget: float,
                     errors: list[str]) -> dict[str, Any]:
    """Measure both folders, each in a ``ZODB.DB`` over
    ``open_storage(label)``: (a read-only storage, what clears its own
    cache for a cold operation)."""
    dbs, subjects = [], {}
    try:
        for label, count in sizes.items():
            storage, clear = open_storage(label)
            dbs.append(ZODB.DB(storage, cache_size=cache))
            subjects[label] = Subject(dbs[-1], count, clear, seed,
                                      f'{where} {label}')
        return measure(subjects, budget, errors)
    finally:
        for subject in subjects.values():
            subject.close()
        for db in dbs:
            db.close()


def file_storage(tmp: str) -> Callable[[str], tuple[Any, Any]]:
    """``open_storage`` of a FileStorage (its reads come from the OS page
    cache: nothing of its own to clear)."""
    def open_storage(label: str) -> tuple[Any, Any]:
        path = os.path.join(tmp, f'{label}.fs')
        return FileStorage(path, read_only=True), lambda: None
    return open_storage


def zeo_storage(server: 'ZEOServer') -> Callable[[str], tuple[Any, Any]]:
    """``open_storage`` through ``server``; cold clears the client cache."""
    def open_storage(label: str) -> tuple[Any, Any]:
        from ZEO.ClientStorage import ClientStorage

        storage = ClientStorage(server.sock, storage=label, read_only=True,
                                wait_timeout=30)
        # ZEO's client cache (private API): cold means from the server
        return storage, storage._cache.clear
    return open_storage


class ZEOServer:
    """``python -m ZEO.runzeo -C zeo.conf`` serving small.fs and big.fs on
    ``tmp/zeo.sock``; stopped by its pid."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.sock = os.path.join(tmp, 'zeo.sock')
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        conf = os.path.join(self.tmp, 'zeo.conf')
        with open(conf, 'w') as f:
            f.write(ZEO_CONF.format(dir=self.tmp))
        with open(os.path.join(self.tmp, 'runzeo.out'), 'wb') as out:
            self.proc = subprocess.Popen(
                [sys.executable, '-m', 'ZEO.runzeo', '-C', conf],
                stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=self.tmp,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not connects(self.sock, socket.AF_UNIX):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f'runzeo did not answer at {self.sock} (exit status '
                    f'{self.proc.poll()}); see {self.tmp}/runzeo.out')
            time.sleep(0.05)

    def peak_rss_mib(self) -> float | None:
        """The server's peak RSS (VmHWM), while it runs."""
        try:
            with open(f'/proc/{self.proc.pid}/status') as f:
                for line in f:
                    if line.startswith('VmHWM:'):
                        return int(line.split()[1]) / 1024
        except (OSError, AttributeError):
            pass
        return None

    def stop(self) -> None:
        proc = self.proc
        if proc is not None:
            stop_process(proc)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if this script dies, even by SIGKILL
    (Linux; elsewhere the ``finally`` of :func:`main` has to do)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# -- reporting ---------------------------------------------------------------


def table(results: dict[str, Any], sizes: dict[str, int]) -> list[str]:
    small, big = f'{sizes["small"]:,}', f'{sizes["big"]:,}'
    head = (f'| storage | operation | mode | µs at {small} | µs at {big} '
            f'| ratio | loads at {small} | loads at {big} | ≤ {TARGET:g}x |')
    lines = [head, '|' + '---|' * 9]
    for where, figures in results.items():
        for op in OPS:
            for mode in ('warm', 'cold'):
                s = figures['small'][op, mode]
                b = figures['big'][op, mode]
                ratio = b.us / s.us if s.us else float('inf')
                shown = f'{ratio:,.0f}' if ratio >= 100 else f'{ratio:.2f}'
                lines.append(
                    f'| {where} | `{LABELS[op]}` | {mode} | {_us(s.us)} '
                    f'| {_us(b.us)} | {shown} | {_loads(s.loads)} '
                    f'| {_loads(b.loads)} '
                    f'| {"yes" if ratio <= TARGET else "**no**"} |')
    return lines


def _us(us: float) -> str:
    if us >= 1000:
        return f'{us:,.0f}'
    return f'{us:.3g}' if us < 10 else f'{us:.1f}'


def _loads(n: float) -> str:
    return f'{n:,.0f}' if n >= 100 else f'{n:.3g}'


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--items', type=int, default=1_000_000,
                   help='items in the big folder (default 1,000,000)')
    p.add_argument('--small', type=int, default=1_000,
                   help='items in the small folder (default 1,000)')
    p.add_argument('--batch', type=int, default=10_000,
                   help='items per transaction while building')
    p.add_argument('--budget', type=float, default=15.0,
                   help='seconds of timing at most per operation and mode')
    p.add_argument('--build-timeout', type=float, default=600.0,
                   help='seconds the build of one folder may take')
    p.add_argument('--seed', type=int, default=7)
    p.add_argument('--no-zeo', action='store_true',
                   help='measure the FileStorage only')
    p.add_argument('--json', metavar='FILE', help='write every figure')
    p.add_argument('--keep', action='store_true',
                   help='keep the temp dir (Data.fs files, ZEO log)')
    p.add_argument('--build-into', metavar='PATH', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.build_into:
        print(json.dumps(build(args.build_into, args.items, args.batch)))
        return 0
    if args.small < 2 or args.items < args.small:
        p.error('need 2 <= --small <= --items')

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    sizes = {'small': args.small, 'big': args.items}
    # the connection cache holds every bucket a warm page walk touches
    cache = max(100_000, args.items // 5)
    tmp = tempfile.mkdtemp(prefix='zeostore-scale-')
    server = ZEOServer(tmp)
    errors: list[str] = []
    results: dict[str, Any] = {}
    builds = {}
    zeo_rss = None
    t_start = time.monotonic()
    try:
        for label, count in sizes.items():
            print(f'building {count:,} items ({label}.fs) ...', flush=True)
            builds[label] = build_in_child(
                os.path.join(tmp, f'{label}.fs'), count, args.batch,
                args.build_timeout)
        print('measuring the FileStorage ...', flush=True)
        results['FileStorage'] = measure_storages(
            file_storage(tmp), 'FileStorage', sizes, cache, args.seed,
            args.budget, errors)
        if not args.no_zeo:
            print('measuring through ZEO ...', flush=True)
            server.start()
            results['ZEO'] = measure_storages(
                zeo_storage(server), 'ZEO', sizes, cache, args.seed,
                args.budget, errors)
            zeo_rss = server.peak_rss_mib()
    finally:
        server.stop()
        if args.keep:
            print(f'kept {tmp}')
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - t_start

    print()
    print('| build | items | seconds | items/s | peak RSS MiB '
          '(after 1st batch) | Data.fs MiB |')
    print('|---|---|---|---|---|---|')
    for label, b in builds.items():
        print(f'| {label} | {b["items"]:,} | {b["total_s"]:.1f} '
              f'| {b["items"] / b["commit_s"]:,.0f} '
              f'| {b["peak_rss_mib"]:.0f} '
              f'({b["peak_rss_first_batch_mib"]:.0f}) '
              f'| {b["file_mib"]:.0f} |')
    print(f'\nbatches of {args.batch:,} items per transaction, '
          f'cacheMinimize() between')
    print()
    for line in table(results, sizes):
        print(line)
    print()
    print('warm: all it touches already in the connection cache, best '
          'round; cold: connection cache minimised (and the ZEO client '
          'cache cleared) before each operation, median. loads: objects '
          'loaded per operation.')
    print(f'\npeak RSS: this process {_peak_rss_kib() / 1024:.0f} MiB'
          + (f', runzeo {zeo_rss:.0f} MiB' if zeo_rss else '')
          + f'; whole run {elapsed:.0f} s')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({
                'sizes': sizes,
                'builds': builds,
                'figures': [
                    {'storage': where, 'size': label, 'op': op,
                     'mode': mode, **asdict(fig)}
                    for where, by_size in results.items()
                    for label, figs in by_size.items()
                    for (op, mode), fig in figs.items()
                ],
                'peak_rss_mib': _peak_rss_kib() / 1024,
                'zeo_peak_rss_mib': zeo_rss,
            }, f, indent=1)
    for error in errors:
        print('ERROR:', error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
