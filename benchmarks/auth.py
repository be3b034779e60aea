"""What authentication adds to a write of the ready app, in-process.

The requirement (the security issue): verification results are cached in
memory, so an authenticated write costs at most 5% more than an
anonymous one would. This measures that ratio; it asserts nothing about
time (the machine is shared and noisy): it prints ratios against a peer
measured in the same run, one round right after the other.

The cases, each over its own real ``runzeo`` (Unix socket, a temp dir;
two servers, so that neither app's commits send invalidations to the
other's client in this same process):

- ``ours``: ``pyramid_zeostore.app.main()``, the ready app as shipped
  (its Guard, the router, ``SecurityPolicy``), with one user ``bench``
  (editor) in the database. Every write carries
  ``Authorization: Basic bench:...``: Pyramid asks the policy for the
  identity (Basic decoded, the login throttle consulted, the user read
  from the request's ZODB connection, the name and password looked up in
  the ``VerifiedCache`` by an HMAC digest) and for the ``edit``
  permission (pyramid_tm no longer asks for the user id: the ready app
  turns ``tm.annotate_user`` off). After the first request,
  argon2 never runs (counted: the benchmark wraps the users module's
  ``check_hash`` and reports how often it ran).
- ``anonymous``: the same ready app built the way ``main()`` builds it
  (``config.include('pyramid_zeostore')``,
  ``config.include('pyramid_zeostore.app')``, the same settings, the same
  views, view derivers and cross-site checks, the same ``Guard``), but
  with a security policy that allows every permission without an
  identity (``AllowAll``, set in the including config, which overrides
  the included one). It gets the very same requests, the Basic header
  included: the cross-site check looks only at whether a Basic header is
  there, so it takes the same branch (Basic + JSON body, no CSRF token)
  and the only difference left is the identity and permission work. Its
  database holds the same user, which it never reads.
- ``uncached``: ``ours`` with its policy's ``cache.known`` patched to
  always say no, so that every request runs argon2 (about 0.1 s): why the
  cache matters. Far fewer requests, against the anonymous peer too.

Two writes, each a POST with ``Content-Type: application/json``:
``write-add`` (``POST /`` ``{"name": "n-<i>"}``, 201: a new item in the
root folder) and ``write-counter`` (``POST /counter/@@increment`` ``{}``,
200). Each app is called through a tiny raw-WSGI caller (an environ
dict, no network, no WebTest), warmed up, then for ``--rounds`` rounds
each app runs ``--writes`` writes of each scenario, the two taking turns
every ``--block`` (10) writes, the first turn alternated every round
(``gc.collect()`` before each scenario of a round, outside the timing):
the load of a shared machine changes within seconds, and a slow moment
then falls on both apps alike. Ratios are taken within a round
(authenticated time per write / anonymous time per write: wall clock,
which the requirement is about; the process's CPU time, which includes
the ZEO client's I/O thread but not runzeo; and the CPU time of the
thread serving the requests, the least noisy, which shows the work the
policy adds); the table shows their median with min-max. Every
answer's status is checked, and at the end the databases are read back
(the folder grew by exactly the 201s, the counter by exactly the 200s):
the exit status is 1 only if something is wrong, never for speed.

    .venv/bin/python benchmarks/auth.py                  # 15 x 300: ~1 min
    .venv/bin/python benchmarks/auth.py --rounds 15 --writes 300 \\
        --output benchmarks/results/2026-12-03-auth.md
    .venv/bin/python benchmarks/auth.py --smoke          # 2 x 20, ~4 s
    .venv/bin/python benchmarks/auth.py --profile 300    # + cProfile
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import importlib.metadata
import io
import logging
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from typing import Any, Callable

import transaction
from pyramid.config import Configurator
from pyramid.interfaces import ISecurityPolicy

from pyramid_zeostore import get_databases
from pyramid_zeostore.app import main
from pyramid_zeostore.app import users as users_module
from pyramid_zeostore.app.content import unbox
from pyramid_zeostore.app.guards import Guard
from pyramid_zeostore.app.users import add_user, check_hash
from pyramid_zeostore.interfaces import (
    IZeostoreAppSettings,
    IZeostoreSettings,
)
from pyramid_zeostore.root import APP_ROOT
from pyramid_zeostore.testing import running_zeo_server

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

#: The anonymous peer's policy: bare_app's (everything allowed).
from bare_app import AnyoneMayDoAnything as AllowAll  # noqa: E402
from common import (  # noqa: E402  (benchmarks/common.py)
    BASIC,
    BENCH_PASSWORD,
    BENCH_USER,
    SECRET,
)

SCENARIOS = ('write-add', 'write-counter')
TARGET = 1.05


def settings_for(server: Any, directory: str) -> dict:
    return {
        'zodb_uri': server.uri(),
        'zeostore.secret': SECRET,
        'zeostore.lock_file': os.path.join(directory, 'zeostore.lock'),
    }


def anonymous_app(settings: dict) -> Guard:
    """The ready app as ``main()`` builds it, but allowing everything."""
    with Configurator(settings=settings) as config:
        config.include('pyramid_zeostore')
        config.include('pyramid_zeostore.app')
        config.set_security_policy(AllowAll())
    registry = config.registry
    zeostore = registry.getUtility(IZeostoreSettings)
    return Guard(
        config.make_wsgi_app(),
        registry.getUtility(IZeostoreAppSettings),
        (zeostore.health_path, zeostore.prometheus_path),
    )


class Caller:
    """Calls a WSGI app in-process with a raw environ; keeps statuses."""

    BASE = {
        'SCRIPT_NAME': '',
        'QUERY_STRING': '',
        'SERVER_NAME': 'localhost',
        'SERVER_PORT': '80',
        'SERVER_PROTOCOL': 'HTTP/1.1',
        'HTTP_HOST': 'localhost',
        'HTTP_ACCEPT': 'application/json',
        'REMOTE_ADDR': '127.0.0.1',
        'wsgi.version': (1, 0),
        'wsgi.url_scheme': 'http',
        'wsgi.multithread': False,
        'wsgi.multiprocess': False,
        'wsgi.run_once': False,
    }

    def __init__(self, name: str, app: Any) -> None:
        self.name = name
        self.app = app
        self.added = 0  # names n-0, n-1, ... used so far
        self.statuses: Counter = Counter()
        self.errors = io.StringIO()

    def call(self, method: str, path: str, body: bytes,
             authorization: str | None = BASIC) -> str:
        environ = dict(self.BASE)
        environ['REQUEST_METHOD'] = method
        environ['PATH_INFO'] = path
        environ['CONTENT_TYPE'] = 'application/json'
        environ['CONTENT_LENGTH'] = str(len(body))
        environ['wsgi.input'] = io.BytesIO(body)
        environ['wsgi.errors'] = self.errors
        if authorization is not None:
            environ['HTTP_AUTHORIZATION'] = authorization
        got = []

        def start_response(status: str, headers: list,
                           exc_info: Any = None) -> Callable:
            got.append(status)
            return lambda data: None

        result = self.app(environ, start_response)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, 'close', None)
            if close is not None:
                close()
        return got[-1][:3]

    def add(self) -> str:
        body = b'{"name": "n-%d"}' % self.added
        self.added += 1
        return self.call('POST', '/', body)

    def increment(self) -> str:
        return self.call('POST', '/counter/@@increment', b'{}')

    def batch(self, scenario: str, count: int, collect: bool = True,
              into: dict | None = None) -> dict:
        """``count`` writes of ``scenario``: wall and CPU seconds (added
        to ``into`` if given)."""
        write = self.add if scenario == 'write-add' else self.increment
        statuses = self.statuses
        if collect:
            gc.collect()
        if into is None:
            into = new_totals()
        t0 = time.perf_counter()
        c0 = time.process_time()
        m0 = time.thread_time()
        for _ in range(count):
            statuses[scenario, write()] += 1
        m1 = time.thread_time()
        c1 = time.process_time()
        t1 = time.perf_counter()
        into['wall'] += t1 - t0
        into['cpu'] += c1 - c0
        into['thread'] += m1 - m0
        into['count'] += count
        return into


def new_totals() -> dict:
    return {'wall': 0.0, 'cpu': 0.0, 'thread': 0.0, 'count': 0}


def interleaved(order: tuple, scenario: str, writes: int,
                block: int) -> dict:
    """``writes`` writes of ``scenario`` by each caller of ``order``, in
    alternating blocks of ``block``: {name: wall and CPU seconds}. A
    slow moment of the machine then falls on both apps alike."""
    totals = {c.name: new_totals() for c in order}
    gc.collect()
    done = 0
    while done < writes:
        count = min(block, writes - done)
        for caller in order:
            caller.batch(scenario, count, collect=False,
                         into=totals[caller.name])
        done += count
    return totals


class Argon2Counter:
    """Counts the argon2 checks the users module makes (wraps its
    ``check_hash``, which only a cache miss reaches)."""

    def __init__(self) -> None:
        self.count = 0
        self.original = users_module.check_hash

    def __enter__(self) -> Argon2Counter:
        def counted(password_hash: str, password: Any) -> bool:
            self.count += 1
            return self.original(password_hash, password)

        users_module.check_hash = counted
        return self

    def __exit__(self, *exc: Any) -> None:
        users_module.check_hash = self.original


class Uncached:
    """``with Uncached(policy):`` its verified-credentials cache misses."""

    def __init__(self, policy: Any) -> None:
        self.cache = policy.cache

    def __enter__(self) -> None:
        self.cache.known = lambda digest, password_hash: False

    def __exit__(self, *exc: Any) -> None:
        del self.cache.known


def read_back(app: Any) -> tuple[int, int]:
    """(children of the root folder, the counter's value)."""
    db = get_databases(app.registry).get('')
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = db.open(transaction_manager=tm)
    try:
        folder = conn.root()[APP_ROOT]
        value = unbox(getattr(folder['counter'], 'counter', 0))
        return len(folder), value
    finally:
        tm.abort()
        conn.close()


def argon2_seconds(times: int = 5) -> float:
    """The median time of one argon2 check of the bench password."""
    password_hash = users_module.hash_password(BENCH_PASSWORD)
    spent = []
    for _ in range(times):
        t0 = time.perf_counter()
        check_hash(password_hash, BENCH_PASSWORD)
        spent.append(time.perf_counter() - t0)
    return statistics.median(spent)


def metadata() -> dict:
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
    versions = []
    for name in ('pyramid', 'pyramid_tm', 'pyramid_retry', 'ZODB', 'ZEO',
                 'argon2-cffi'):
        try:
            versions.append(f'{name} {importlib.metadata.version(name)}')
        except importlib.metadata.PackageNotFoundError:
            pass
    versions.append(f'Python {sys.version.split()[0]}')
    return {
        'date': time.strftime('%Y-%m-%d %H:%M'),
        'commit': git('rev-parse', '--short', 'HEAD') or '?',
        'dirty': (f' + uncommitted changes in pyramid_zeostore/ '
                  f'({len(dirty.splitlines())} files)' if dirty else ''),
        'source_hash': digest.hexdigest()[:12],
        'versions': ', '.join(versions),
        'cpus': os.cpu_count(),
    }


def loadavg() -> str:
    return ' '.join(f'{v:.2f}' for v in os.getloadavg())


def spread(values: list[float], digits: int = 3) -> str:
    if not values:
        return 'n/a'
    fmt = f'{{:.{digits}f}}'
    median = fmt.format(statistics.median(values))
    return (f'**{median}** ({fmt.format(min(values))}–'
            f'{fmt.format(max(values))})')


def profile(caller: Caller, count: int) -> str:
    """cProfile ``count`` write-adds of ``caller``: the top entries."""
    profiler = cProfile.Profile()
    profiler.enable()
    caller.batch('write-add', count)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats('tottime').print_stats(15)
    stats.sort_stats('cumulative').print_stats(
        r'security|csrf|RequestLocalCache|hmac|base64', 15
    )
    return out.getvalue()


def run(args: argparse.Namespace) -> tuple[str, bool]:
    started = time.monotonic()
    meta = metadata()
    load_start = loadavg()
    ok = True
    notes = []
    directory = tempfile.mkdtemp(prefix='zs-auth-')
    try:
        with ExitStack() as stack:
            servers = {}
            for name in ('ours', 'anonymous'):
                path = os.path.join(directory, name)
                os.makedirs(path)
                servers[name] = stack.enter_context(
                    running_zeo_server(path)
                )
            # (its startup check warns that no user exists yet: quiet)
            quiet = logging.getLogger('pyramid_zeostore.app')
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                ours_app = main(
                    {}, **settings_for(servers['ours'],
                                       os.path.join(directory, 'ours'))
                )
            finally:
                quiet.setLevel(level)
            peer_app = anonymous_app(
                settings_for(servers['anonymous'],
                             os.path.join(directory, 'anonymous'))
            )
            apps = {'ours': ours_app, 'anonymous': peer_app}
            for app in apps.values():
                stack.callback(get_databases(app.registry).close)
                add_user(get_databases(app.registry).get(''), BENCH_USER,
                         BENCH_PASSWORD, 'editor')
            policy = ours_app.registry.getUtility(ISecurityPolicy)
            peer_policy = peer_app.registry.getUtility(ISecurityPolicy)
            assert isinstance(peer_policy, AllowAll), peer_policy
            callers = {name: Caller(name, app) for name, app in apps.items()}
            ours, peer = callers['ours'], callers['anonymous']

            # Sanity: ours refuses a write without credentials (401, a
            # JSON client); both accept the authenticated one (the first
            # runs argon2).
            for caller in (ours, peer):
                status = caller.call('POST', '/', b'{"name": "counter"}')
                if status != '201':
                    raise SystemExit(
                        f'{caller.name}: creating the counter answered '
                        f'{status}:\n{caller.errors.getvalue()[-3000:]}'
                    )
            anonymous_status = ours.call(
                'POST', '/counter/@@increment', b'{}', authorization=None
            )
            if anonymous_status != '401':
                ok = False
                notes.append(
                    f'ours answered {anonymous_status} (not 401) to a '
                    'write without credentials'
                )
            for caller in (ours, peer):  # warm-up, not counted
                for scenario in SCENARIOS:
                    caller.batch(scenario, args.warmup)
            for caller in (ours, peer):
                caller.statuses.clear()

            rounds = []
            with Argon2Counter() as argon2:
                for r in range(args.rounds):
                    order = (ours, peer) if r % 2 == 0 else (peer, ours)
                    row = {'order': [c.name for c in order]}
                    for scenario in SCENARIOS:
                        totals = interleaved(order, scenario, args.writes,
                                             args.block)
                        for name, measure in totals.items():
                            row[scenario, name] = measure
                    rounds.append(row)
                    print(f'round {r + 1}/{args.rounds}: ' + ', '.join(
                        f'{s} x{ratio(row, s, "wall"):.3f}'
                        for s in SCENARIOS
                    ), file=sys.stderr)
                cached_argon2 = argon2.count

            uncached_rounds = []
            with Argon2Counter() as argon2:
                for r in range(args.uncached_rounds):
                    pair = ['uncached', 'anonymous']
                    if r % 2:
                        pair.reverse()
                    row = {'order': pair}
                    for name in pair:
                        if name == 'uncached':
                            with Uncached(policy):
                                row['uncached'] = ours.batch(
                                    'write-add', args.uncached_writes
                                )
                        else:
                            row['anonymous'] = peer.batch(
                                'write-add', args.uncached_writes
                            )
                    uncached_rounds.append(row)
                uncached_argon2 = argon2.count
            one_argon2 = argon2_seconds()

            profiles = []
            if args.profile:
                for caller in (ours, peer):
                    profiles.append((caller.name,
                                     profile(caller, args.profile)))

            # The end state: every write answered and stored once.
            added = {c.name: 0 for c in (ours, peer)}
            increments = dict(added)
            for caller in (ours, peer):
                for (scenario, status), n in caller.statuses.items():
                    if scenario == 'write-add' and status == '201':
                        added[caller.name] += n
                    elif scenario == 'write-counter' and status == '200':
                        increments[caller.name] += n
                    else:
                        ok = False
                        notes.append(
                            f'{caller.name}: {n} x {status} on {scenario}'
                        )
            checks = {}
            for caller in (ours, peer):
                children, value = read_back(caller.app)
                # + the counter, + the warm-up's writes
                want = (added[caller.name] + 1 + args.warmup,
                        increments[caller.name] + args.warmup)
                good = (children, value) == want
                ok = ok and good
                checks[caller.name] = (
                    f'{children} children, counter {value}: '
                    + ('ok' if good else f'**FAIL** (expected {want})')
                )
            if cached_argon2:
                ok = False
                notes.append(
                    f'argon2 ran {cached_argon2} times in the cached rounds'
                )
            errors = ours.errors.getvalue() + peer.errors.getvalue()
            if errors.strip():
                notes.append('wsgi.errors: ' + errors[-2000:])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    elapsed = time.monotonic() - started
    text = report(
        args, meta, load_start, loadavg(), elapsed, rounds,
        uncached_rounds, cached_argon2, uncached_argon2, one_argon2,
        checks, notes, profiles, ok,
    )
    return text, ok


def per_write(measure: dict, key: str) -> float:
    return measure[key] / measure['count']


def ratio(row: dict, scenario: str, key: str) -> float:
    return (per_write(row[scenario, 'ours'], key)
            / per_write(row[scenario, 'anonymous'], key))


def report(args: argparse.Namespace, meta: dict, load_start: str,
           load_end: str, elapsed: float, rounds: list,
           uncached_rounds: list, cached_argon2: int, uncached_argon2: int,
           one_argon2: float, checks: dict, notes: list, profiles: list,
           ok: bool) -> str:
    lines = [
        f'# Authentication benchmark {meta["date"]}',
        '',
        f'Package commit `{meta["commit"]}`{meta["dirty"]} (sources hash '
        f'`{meta["source_hash"]}`), {meta["versions"]}.  ',
        f'`benchmarks/auth.py --rounds {args.rounds} --writes '
        f'{args.writes} --block {args.block}` (warm-up {args.warmup} '
        'writes per app and '
        f'scenario; uncached: {args.uncached_rounds} x '
        f'{args.uncached_writes}); {meta["cpus"]} CPUs, in-process raw '
        'WSGI calls, each app over its own runzeo (Unix socket). Took '
        f'{elapsed:.1f} s. Load average at the start {load_start}, at the '
        f'end {load_end}.',
        '',
        *(['**--smoke**: this checks that the harness runs and the writes '
           'are right; the ratios of so few writes are noise.', '']
          if args.smoke else []),
        'Ratios are authenticated / anonymous time per write, taken within '
        'each round (in each round both apps do the writes of a scenario '
        f'taking turns every {args.block} writes, the first turn '
        'alternated from round to round): median **bold** (min–max) over '
        'the rounds. Wall: perf_counter (the requirement: ≤ '
        f'{TARGET:.2f}x); CPU: this process\'s CPU time (the ZEO client\'s '
        'I/O thread included, runzeo not); thread: the CPU time of the '
        'thread that serves the requests (the least noisy). Added: median '
        'over the rounds of (authenticated - anonymous) per write. '
        '(argon2 runs in threads of its own: the uncached row\'s thread '
        'column leaves most of it out.)',
        '',
        '| scenario | case | writes/s | µs/write: wall | CPU | thread '
        '| x anonymous: wall | CPU | thread | µs added: wall | thread '
        f'| argon2 checks | wall ≤ {TARGET:.2f}x? |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    keys = ('wall', 'cpu', 'thread')

    def row(scenario: str, case: str, mine: list, peer: list | None,
            argon2: Any, met: str, digits: int = 3) -> str:
        medians = [statistics.median(per_write(m, k) for m in mine)
                   for k in keys]
        cells = [f'{1 / medians[0]:.{1 if medians[0] > 0.01 else 0}f}']
        cells += [f'{m * 1e6:.0f}' for m in medians]
        if peer is None:
            cells += [''] * 5
        else:
            pairs = list(zip(mine, peer, strict=True))
            for k in keys:
                cells.append(spread(
                    [per_write(m, k) / per_write(p, k) for m, p in pairs],
                    digits,
                ))
            for k in ('wall', 'thread'):
                added = statistics.median(
                    1e6 * (per_write(m, k) - per_write(p, k))
                    for m, p in pairs
                )
                cells.append(f'{added:.0f}')
        cells += [str(argon2), met]
        return f'| {scenario} | {case} | ' + ' | '.join(cells) + ' |'

    for scenario in SCENARIOS:
        mine = [r[scenario, 'ours'] for r in rounds]
        peer = [r[scenario, 'anonymous'] for r in rounds]
        wall_ratio = statistics.median(
            per_write(m, 'wall') / per_write(p, 'wall')
            for m, p in zip(mine, peer, strict=True)
        )
        lines.append(row(
            scenario, 'authenticated (ours)', mine, peer,
            cached_argon2 if scenario == SCENARIOS[0] else '',
            'yes' if wall_ratio <= TARGET else '**no**',
        ))
        lines.append(row(scenario, 'anonymous peer', peer, None, '', ''))
    if uncached_rounds:
        lines.append(row(
            'write-add', 'uncached (argon2 every request)',
            [r['uncached'] for r in uncached_rounds],
            [r['anonymous'] for r in uncached_rounds],
            uncached_argon2, "(the cache's reason)", digits=1,
        ))
    lines += [
        '',
        f'One argon2 check of the bench password, alone: '
        f'{one_argon2 * 1e3:.0f} ms (median of 5).',
        '',
        'End state (read back through ZEO): ' + '; '.join(
            f'{name}: {check}' for name, check in checks.items()
        ) + '.',
    ]
    if notes:
        lines += ['', '**Problems:**', '']
        lines += [f'- {note}' for note in notes]
    lines += [
        '',
        '<details><summary>Every round (writes/s; ratio = authenticated / '
        'anonymous time per write)</summary>',
        '',
        '| round | order | add: ours | add: anonymous | add: ratio '
        '| counter: ours | counter: anonymous | counter: ratio |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for i, r in enumerate(rounds, 1):
        cells = []
        for scenario in SCENARIOS:
            for name in ('ours', 'anonymous'):
                cells.append(f'{1 / per_write(r[scenario, name], "wall"):.0f}')
            cells.append(f'{ratio(r, scenario, "wall"):.3f}')
        lines.append(f'| {i} | {" then ".join(r["order"])} | '
                     + ' | '.join(cells) + ' |')
    if uncached_rounds:
        lines += [
            '',
            '| uncached round | order | uncached writes/s | anonymous '
            'writes/s | ratio |',
            '|---|---|---|---|---|',
        ]
        for i, r in enumerate(uncached_rounds, 1):
            u = per_write(r['uncached'], 'wall')
            a = per_write(r['anonymous'], 'wall')
            lines.append(f'| {i} | {" then ".join(r["order"])} | '
                         f'{1 / u:.1f} | {1 / a:.0f} | {u / a:.1f} |')
    lines += ['', '</details>']
    for name, text in profiles:
        lines += [
            '',
            f'<details><summary>cProfile, {args.profile} write-adds of '
            f'{name}</summary>',
            '',
            '```',
            text.strip(),
            '```',
            '',
            '</details>',
        ]
    lines += ['', f'Result: {"ok" if ok else "FAIL"}.', '']
    return '\n'.join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--writes', type=int, default=300,
                        help='writes per app, scenario and round')
    parser.add_argument('--block', type=int, default=10,
                        help='the apps take turns every BLOCK writes '
                        'within a round')
    parser.add_argument('--warmup', type=int, default=100,
                        help='writes per app and scenario before timing')
    parser.add_argument('--uncached-rounds', type=int, default=3)
    parser.add_argument('--uncached-writes', type=int, default=10)
    parser.add_argument('--profile', type=int, default=0, metavar='N',
                        help='then cProfile N write-adds of each app')
    parser.add_argument('--smoke', action='store_true',
                        help='2 rounds x 20 writes, 1 x 3 uncached')
    parser.add_argument('--output', metavar='FILE',
                        help='also write the Markdown here')
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.writes, args.warmup = 2, 20, 5
        args.uncached_rounds, args.uncached_writes = 1, 3
    for name in ('rounds', 'writes', 'block', 'warmup'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be at least 1')
    if args.uncached_rounds < 0 or args.uncached_writes < 1:
        parser.error('--uncached-rounds >= 0 and --uncached-writes >= 1')
    return args


def main_cli(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text, ok = run(args)
    print(text)
    if args.output:
        with open(args.output, 'w') as f:
            f.write(text)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main_cli())
