"""Evolve steps over a real ZEO server, run by real processes.

- a batched step over 100,000 objects through ``pzeo evolve --run`` (a
  child process that reports its own peak RSS): every object changed
  exactly once, the step recorded, the connection's cache bounded by
  the batch size, progress lines in a pipe; time and memory printed;
- ``zeostore.autoevolve = true`` in 4 processes let go at one moment
  (:class:`~tests.functional.conftest.StartingLine`): each step ran once,
  by one of them, and all 4 serve;
- ``pzeo evolve --rename`` through the ZEO server while it serves: the
  stored records name the new class, none the old one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import transaction

from pyramid_zeostore.databases import Databases
from pyramid_zeostore.evolve import RECORD
from tests.functional import conftest as fconf
from tests.functional import evolveapp

COUNT = 100_000
BATCH = 1000

#: ``pzeo`` in a child that prints its own peak RSS (KiB) at exit.
PZEO = (
    'import resource, sys\n'
    'from pyramid_zeostore.cli import main\n'
    'status = main(sys.argv[1:])\n'
    'peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
    'print(f"peak-rss-kib {peak}", file=sys.stderr)\n'
    'sys.exit(status)\n'
)


def write_ini(tmp_path, uri: str, kind: str, **settings) -> str:
    lines = [
        '[app:main]',
        'use = call:tests.functional.evolveapp:main',
        f'zodb_uri = {uri}',
        f'evolveapp.steps = {kind}',
        *(f'{k} = {v}' for k, v in settings.items()),
    ]
    path = tmp_path / 'evolve.ini'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def pzeo(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, '-c', PZEO, *args], capture_output=True,
        text=True, env=env or fconf.child_env(), timeout=timeout,
    )


def in_transaction(db, work):
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = db.open(transaction_manager=tm)
    try:
        result = work(conn.root(), tm)
        tm.commit()
        return result
    finally:
        conn.close()


def test_a_batched_step_over_100k_objects(zeo_server, tmp_path):
    databases = Databases.from_uri(zeo_server.uri(), 10)
    try:
        db = databases.get('')
        started = time.monotonic()

        def build(root, tm):
            evolveapp.make_things(
                root, COUNT, 25_000, lambda: (tm.commit(), tm.begin())
            )

        in_transaction(db, build)
        built = time.monotonic() - started
    finally:
        databases.close()

    ini = write_ini(tmp_path, zeo_server.uri(), 'many')
    env = fconf.child_env()
    env.update(EVOLVEAPP_BATCH=str(BATCH), PZEO_PROGRESS_INTERVAL='0.5')
    res = pzeo('evolve', ini, env=env)
    assert res.returncode == 0 and 'pending   touch_all' in res.stdout

    started = time.monotonic()
    res = pzeo('evolve', ini, '--run', env=env)
    took = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    assert 'running touch_all ...' in res.stdout
    assert 'touch_all: done in' in res.stdout
    assert f'{COUNT} objects' in res.stdout
    peak_kib = int(res.stderr.rsplit('peak-rss-kib ', 1)[1].split()[0])
    # In a pipe: a progress line per interval, then one at the end.
    lines = [line for line in res.stderr.splitlines()
             if line.startswith('evolve touch_all: ')]
    assert lines and lines[-1].startswith(
        f'evolve touch_all: {COUNT:,}/{COUNT:,} objects (100%)'
    )

    databases = Databases.from_uri(zeo_server.uri(), 10)
    try:
        db = databases.get('')

        def check(root, tm):
            things = root[evolveapp.THINGS]
            versions = {}
            keys = list(things.keys())
            for start in range(0, len(keys), 5000):
                chunk = [things[k] for k in keys[start:start + 5000]]
                root._p_jar.prefetch(chunk)
                for thing in chunk:
                    versions[thing.version] = versions.get(
                        thing.version, 0) + 1
                root._p_jar.cacheMinimize()
            return (versions, dict(root[evolveapp.STATS]),
                    dict(root[RECORD]['finished']['touch_all']),
                    root[RECORD]['claim'])

        versions, stats, record, claim = in_transaction(db, check)
    finally:
        databases.close()
    assert versions == {2: COUNT}  # each changed exactly once
    assert stats['seen'] == COUNT
    # the cache held about one batch, never the 100,000
    assert stats['peak_cache'] < 2 * BATCH + 500
    assert record['by'] == 'pzeo evolve' and claim is None
    assert peak_kib < 1024 * 1024  # generous: well below 1 GiB
    print(
        f'\nevolve 100k: built {COUNT} objects in {built:.1f}s; '
        f'step (batch {BATCH}) through pzeo in {took:.1f}s, peak RSS '
        f'{peak_kib / 1024:.0f} MiB, peak cache {stats["peak_cache"]} '
        f'objects'
    )


CHILD = (
    'import json, os, sys\n'
    'from pyramid.paster import get_app\n'
    'from pyramid.request import Request\n'
    'ready, go = map(int, sys.argv[-2:])\n'
    'os.write(ready, b".")\n'
    'os.read(go, 1)\n'
    'app = get_app(sys.argv[1], "main")\n'
    'resp = Request.blank("/evolveapp").get_response(app)\n'
    'print(json.dumps({"status": resp.status_code, "body": resp.text,\n'
    '                  "pid": os.getpid()}))\n'
)


def test_autoevolve_in_four_processes_runs_each_step_once(
    zeo_server, tmp_path
):
    databases = Databases.from_uri(zeo_server.uri(), 10)
    try:
        # Not a new database: the steps have work to do.
        in_transaction(databases.get(''),
                       lambda root, tm: root.__setitem__('seed', 1))
    finally:
        databases.close()
    ini = write_ini(tmp_path, zeo_server.uri(), 'race',
                    **{'zeostore.autoevolve': 'true',
                       'evolveapp.sleep': '0.3'})
    line = fconf.StartingLine()
    children = []
    try:
        for _ in range(4):
            children.append(subprocess.Popen(
                [sys.executable, '-c', CHILD, ini, *line.args()],
                pass_fds=line.pass_fds, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, env=fconf.child_env(),
            ))
        line.wait_ready(4)
        line.go()
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        line.close()
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
    results = []
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        results.append(json.loads(out))
    first = 'tests.functional.evolveapp.first'
    second = 'tests.functional.evolveapp.second'
    assert [r['status'] for r in results] == [200] * 4
    assert all(r['body'].endswith(f'{first},{second}') for r in results)

    databases = Databases.from_uri(zeo_server.uri(), 10)
    try:
        runs, claim = in_transaction(
            databases.get(''),
            lambda root, tm: (list(root[evolveapp.RUNS]),
                              root[RECORD]['claim']),
        )
    finally:
        databases.close()
    assert [name for name, _ in runs] == ['first', 'second']
    assert runs[0][1] == runs[1][1] in {r['pid'] for r in results}
    assert claim is None
    print(f'\nautoevolve: 4 processes, steps ran once, by pid {runs[0][1]}')


def test_rename_through_the_zeo_server(zeo_server, tmp_path):
    from tests.functional.evolveapp_old import Thing

    databases = Databases.from_uri(zeo_server.uri(), 10)
    try:
        oids = in_transaction(databases.get(''), lambda root, tm: (
            root.__setitem__('things', [Thing(1), Thing(2)]),
            tm.savepoint(),
            [t._p_oid for t in root['things']],
        )[2])
    finally:
        databases.close()
    ini = write_ini(tmp_path, zeo_server.uri(), 'basic')
    res = pzeo('evolve', ini, '--rename',
               'tests.functional.evolveapp_old.Thing='
               'tests.functional.evolveapp_new.Item', '-q')
    assert res.returncode == 0, res.stderr
    # the two Things, and the root that holds them in a list
    assert 'zodb_uri: rewrote 3 records' in res.stdout

    databases = Databases.from_uri(zeo_server.uri(), 10)
    try:
        db = databases.get('')
        kinds = in_transaction(db, lambda root, tm: [
            f'{type(t).__module__}.{type(t).__name__}'
            for t in root['things']
        ])
        records = [db.storage.load(oid)[0] for oid in oids]
    finally:
        databases.close()
    assert kinds == ['tests.functional.evolveapp_new.Item'] * 2
    assert all(b'evolveapp_old' not in r and b'evolveapp_new' in r
               for r in records)
    assert os.path.exists(zeo_server.sock)  # served all along


def test_autoevolve_in_four_gunicorn_workers_runs_each_step_once(
    zeo_server, tmp_path
):
    """The same through a real server: ``gunicorn -w 4`` without
    ``--preload`` boots its 4 workers at once, each loading the app (and
    so autoevolving) on its own; then they are hit over loopback."""
    databases = Databases.from_uri(zeo_server.uri(), 10)
    try:
        in_transaction(databases.get(''),
                       lambda root, tm: root.__setitem__('seed', 1))
    finally:
        databases.close()
    port = fconf.free_port()
    ini = write_ini(tmp_path, zeo_server.uri(), 'race',
                    **{'zeostore.autoevolve': 'true',
                       'evolveapp.sleep': '0.3'})
    with open(ini, 'a') as f:
        f.write(f'\n[server:main]\nuse = egg:waitress#main\n'
                f'listen = 127.0.0.1:{port}\n')
    server = fconf.gunicorn(ini, 4)
    server.start()
    try:
        workers = fconf.wait_children(server.proc.pid, 4)
        seen = {}
        deadline = time.monotonic() + 60
        while len(seen) < 4 and time.monotonic() < deadline:
            status, _, body = server.request(
                '/evolveapp', headers={'Connection': 'close'}
            )
            assert status == 200, server.log()
            pid, _, done = body.decode().partition(' ')
            seen[int(pid)] = done
        log = server.log()
    finally:
        server.stop()
    assert set(seen) == workers, (seen, log)  # every worker answered
    first = 'tests.functional.evolveapp.first'
    second = 'tests.functional.evolveapp.second'
    assert all(b.endswith(f'{first},{second}') for b in seen.values())
    databases = Databases.from_uri(zeo_server.uri(), 10)
    try:
        runs, claim = in_transaction(
            databases.get(''),
            lambda root, tm: (list(root[evolveapp.RUNS]),
                              root[RECORD]['claim']),
        )
    finally:
        databases.close()
    assert [name for name, _ in runs] == ['first', 'second'], log
    assert runs[0][1] == runs[1][1] in workers
    assert claim is None
    print(f'\nautoevolve: gunicorn -w 4, steps ran once, by worker '
          f'{runs[0][1]} of {sorted(workers)}')
