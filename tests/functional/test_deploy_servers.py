"""One scenario, three ways to serve: gunicorn, gunicorn --preload, waitress.

Each server serves the ready app from a real ``runzeo`` through the
``workerpid`` filter while :mod:`.scenario` drives 8 keep-alive clients
for ``ZEOSTORE_DEPLOY_SECONDS`` (default 10) seconds: page reads, item
reads, adds of uuid-named items and increments of one hot counter. Then
the database itself (a fresh ZEO client of the test) must hold every
acknowledged add and a counter equal to the acknowledged increments; no
answer may be a 5xx, every serving process must have answered, and the
ZEO server must count one client per serving process.

``--preload`` is the fork-safety case: the master runs ``main``, which
opens the database and bootstraps the root before the fork (the start-up
check), and ``zeostore_test.hold_open`` keeps the master's ZEO client open
across the fork (its socket and I/O thread), so every worker starts with
an inherited, live client that it must not use.
"""

from __future__ import annotations

import os

import pytest

from . import conftest as fconf
from .scenario import Scenario

DURATION = float(os.environ.get('ZEOSTORE_DEPLOY_SECONDS', '10'))
WORKERS = 4
CLIENTS = 8

pytestmark = pytest.mark.deploy


@pytest.mark.parametrize('kind', ['gunicorn', 'gunicorn-preload', 'waitress'])
def test_scenario(kind, tmp_path, zeo_server, servers, record_property):
    settings = {'pyramid.includes': 'tests.functional.workerpid'}
    if kind == 'gunicorn-preload':
        settings['zeostore.check_on_startup'] = 'true'
        settings['zeostore_test.hold_open'] = 'true'
    ini = fconf.write_ini(
        tmp_path, zeo_server.uri(), worker_pid=True, threads=4, **settings
    )
    if kind.startswith('gunicorn'):
        args = ['--preload'] if kind == 'gunicorn-preload' else []
        server = servers(fconf.gunicorn(ini, WORKERS, *args), timeout=60)
        pids = fconf.wait_children(server.proc.pid, WORKERS)
        label = f'gunicorn -w {WORKERS}' + ' --preload' * bool(args)
        # the preload master keeps its own client open: the server
        # counts it too, which proves it was open across the fork
        processes = WORKERS + (kind == 'gunicorn-preload')
    else:
        server = servers(fconf.pserve(ini), timeout=60)
        pids = {server.proc.pid}
        label = 'waitress (pserve, threads = 4)'
        processes = 1

    scenario = Scenario(server.port, clients=CLIENTS)
    scenario.setup()
    result = scenario.run(DURATION, label=label)
    if kind.startswith('gunicorn'):
        # no worker died and was replaced meanwhile
        assert fconf.child_pids(server.proc.pid) == pids, server.log()
    scenario.verify(
        result, zeo_server.sock, pids=pids, min_connections=processes
    )
    print('\n' + result.summary())
    record_property('summary', result.summary())
    assert result.problems == [], result.summary() + '\n' + server.log()
    log = server.log(None)
    assert 'Traceback' not in log, log[-6000:]
    # every kind of request was served
    for kind_ in ('list', 'item', 'add', 'increment'):
        assert any(c.ok for c in result.of(kind_)), result.summary()
