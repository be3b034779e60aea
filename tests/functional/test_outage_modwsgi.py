"""mod_wsgi daemon processes recycling through a ZEO outage.

``mod_wsgi-express start-server deploy/app.wsgi --processes 3 --threads 2
--maximum-requests 20`` as www-data (see :mod:`.modwsgi`), the ready app
behind the ``workerpid`` filter, in front of ``runzeo -C deploy/zeo.conf``,
all on loopback, under the mixed load of :mod:`.scenario`. ZEO is stopped
(SIGTERM) for at least ``OUTAGE`` seconds, and until a daemon process
started during the outage has answered, then started again on the same
conf and socket.

Checked, as for gunicorn in ``test_faults.py::
test_workers_recycling_through_an_outage``: the Apache master stays up
(the same pid throughout); while ZEO is down the answers are 503 with
``Retry-After``, never a 500 or a traceback, and no request hangs; daemon
processes that mod_wsgi restarts during the outage come up (the ready
app's startup check warns "did not answer at startup") and answer 503;
no 503 begins later than ``RETURN_BOUND`` seconds after ZEO's return, and
every daemon serves again; every acknowledged write is there, read through
the restarted ZEO server and, once it stopped, from Data.fs itself
(``fstest`` clean).

mod_wsgi's restart on ``maximum-requests`` is graceful: a daemon that
reaches its count while another of its threads is busy keeps accepting
requests until one ends with no other in flight (or until
``--graceful-timeout``); its lifetime past the count is measured and
printed.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import time

import pytest

from . import appmaker, modwsgi
from .conftest import add_test_user, free_port
from .scenario import MIX, Scenario
from .test_deploy_modwsgi import INI, unavailable
from .test_faults import (
    HANG_BOUND,
    LIMIT,
    OUTAGE,
    PHASE,
    RETRY_AFTER,
    RETURN_BOUND,
    answered_since,
    figures,
    fstest_outcome,
    note,
    wait_until,
)

pytestmark = pytest.mark.deploy

PROCESSES = 3
THREADS = 2
MAX_REQUESTS = 20
CLIENTS = 6
#: the same bound on a wait for ZEO as the gunicorn fault tests
CONNECT_TIMEOUT = '1'
STARTUP_WARNING = 'did not answer at startup'
#: seconds for a daemon's ZEO client to see the server's socket close: a
#: read begun sooner may be answered 200 from its connection's cache
NOTICE = 1.0
#: what mod_wsgi or Apache log when a request or a daemon failed: an
#: exception out of the app or its script, a daemon that died with requests
#: in flight or never answered, a request no daemon took in time
MOD_WSGI_ERRORS = (
    'exception raised processing WSGI script',
    'exception raised by WSGI script',
    'exception raised when doing exec',
    'Failed to exec Python script',
    'response headers from daemon process',
    'Truncated or oversized response headers',
    'Premature end of script headers',
    'Queue timeout expired',
    'Unable to connect to WSGI daemon process',
    'Daemon process deadlock timer expired',
    'Application startup timer expired',
    'exception raised by Python atexit',
    'Exception occurred within Python atexit',
)


@pytest.fixture(scope='module')
def web_venv():
    try:
        return modwsgi.ensure_venv(log=print)
    except modwsgi.Unavailable as e:
        unavailable(str(e))


def outage_ini(zodb_uri: str) -> str:
    """test_deploy_modwsgi's ini, with the fault tests' timeouts."""
    ini = INI.format(zodb_uri=zodb_uri, secret=appmaker.SECRET)
    old = 'zeostore.connect_timeout = 10\n'
    assert old in ini, 'test_deploy_modwsgi.INI: no connect_timeout'
    return ini.replace(old, (
        f'zeostore.connect_timeout = {CONNECT_TIMEOUT}\n'
        f'zeostore.retry_after = {RETRY_AFTER}\n'
    ))


@pytest.fixture
def site(web_venv):
    """(WebZEO started, ModWSGIServer not started) in a web dir; both
    stopped and the dir removed at the end."""
    directory = modwsgi.make_web_dir()
    zeo = server = None
    try:
        zeo = modwsgi.WebZEO(directory)
        zeo.start()
        add_test_user(zeo.uri())
        lib = modwsgi.install_app(web_venv, os.path.join(directory, 'app'))
        www = os.path.join(directory, 'site')
        os.mkdir(www, 0o755)
        script = shutil.copy(os.path.join(modwsgi.DEPLOY, 'app.wsgi'), www)
        ini = os.path.join(www, 'test.ini')
        with open(ini, 'w') as f:
            f.write(outage_ini(zeo.uri()))
        server = modwsgi.ModWSGIServer(
            web_venv, directory, script, free_port(), lib,
            modwsgi.web_env(directory, PYRAMID_ZEOSTORE_INI=ini),
            processes=PROCESSES, threads=THREADS,
            args=['--maximum-requests', str(MAX_REQUESTS)],
        )
        yield zeo, server
    finally:
        left = server.stop() if server is not None else []
        if zeo is not None:
            zeo.stop()
        shutil.rmtree(directory, ignore_errors=True)
        assert not left, f'Apache processes left after apachectl stop: {left}'


def spread(values) -> list[float] | None:
    """[median, max] of ``values``, rounded (None: no values)."""
    values = sorted(values)
    if not values:
        return None
    return [round(values[len(values) // 2], 2), round(values[-1], 2)]


def recycling(log: str) -> dict:
    """How mod_wsgi recycled the daemons, from its error log: how many
    shutdowns on ``maximum-requests`` waited for requests in flight, and
    [median, max] seconds from reaching the count to the shutdown (the
    daemon goes on serving meanwhile), from the shutdown to the exit, from
    the exit until the master noticed it and started a replacement, and
    from a daemon's start to its first request (the app loaded, its
    startup check done)."""
    lives = modwsgi.daemon_lives(log).values()

    def between(first, then):
        return spread(
            life[then] - life[first] for life in lives
            if first in life and then in life
        )

    return {
        'graceful_shutdowns': len(
            modwsgi.log_pids(log, 'attempting graceful shutdown')
        ),
        'graceful_rearms': log.count('attempting graceful shutdown'),
        'count_to_shutdown_s': between('count', 'shutdown'),
        'shutdown_to_exit_s': between('shutdown', 'exit'),
        'exit_to_replacement_s': between('exit', 'died'),
        'start_to_first_request_s': between('start', 'first_request'),
    }


def test_daemons_recycling_through_an_outage(site, record_property):
    """``--maximum-requests 20``: daemons that mod_wsgi restarts while ZEO
    is stopped come up and answer 503, the Apache master stays up, and
    once ZEO is back every daemon serves."""
    zeo, server = site
    start = time.monotonic()
    server.start()
    master = server.master_pid
    watch = modwsgi.DaemonWatch(server).start()
    scenario = Scenario(server.port, clients=CLIENTS, mix=MIX)
    try:
        scenario.setup()
        scenario.start(10 * LIMIT, label=(
            f'mod_wsgi-express --processes {PROCESSES} --threads {THREADS} '
            f'--maximum-requests {MAX_REQUESTS}'
        ))
        try:
            wait_until(lambda: scenario.acked_writes() >= 50, '50 writes')
            before = watch.poll()
            zeo.stop(signal.SIGTERM)
            stopped_at = time.monotonic()
            before |= watch.poll() | watch.seen()

            def started_in_outage() -> set:
                """Daemons started after the stop that answered 503."""
                new = watch.seen() - before
                return {c.pid for c in scenario.calls()
                        if c.status == 503 and c.pid in new}

            # at least OUTAGE seconds, and until a daemon started in the
            # outage has answered (bounded by LIMIT)
            wait_until(
                lambda: time.monotonic() - stopped_at >= OUTAGE
                and started_in_outage(),
                'a daemon started during the outage answering 503',
            )
            outage_daemons = started_in_outage()
            assert server.master_pid == master, server.logs()
            zeo.start()
            restarted_at = time.monotonic()
            current = watch.poll()
            in_outage = watch.seen() - before

            def back() -> bool:
                live = watch.poll()
                ok = answered_since(scenario, restarted_at)
                # the daemons alive at the return, or those replacing them
                return len(ok & (current | live)) >= PROCESSES or live <= ok

            all_back = wait_until(back, 'every daemon answering after ZEO')
            wait_until(lambda: time.monotonic() - restarted_at > PHASE,
                       'the load going on after recovery')
        finally:
            scenario.stop()
        result = scenario.wait()
    finally:
        watch.stop()
    masters = set(watch.masters)
    log = server.error_log(None)
    late_503 = [c for c in result.calls
                if c.status == 503 and c.start > restarted_at + RETURN_BOUND]
    outage = [c for c in result.calls if c.status == 503]
    # the answers to requests sent and answered while ZEO was down (after
    # a moment for the daemons' clients to see its socket close: a read
    # begun before that is served from the connection's cache, a 200)
    during = collections.Counter(
        c.status for c in result.calls
        if c.start > stopped_at + NOTICE and c.end < restarted_at
    )
    warned = modwsgi.log_pids(log, STARTUP_WARNING)
    started = modwsgi.log_pids(log, 'Starting daemon process')
    scenario.verify(result, zeo.sock, allow_503=True)
    print('\n' + result.summary())
    note(record_property, 'modwsgi_recycling_outage_figures', {
        **figures(result),
        '503': len(outage),
        'max_503_seconds': round(result.max_seconds(503), 2),
        'outage_seconds': round(restarted_at - stopped_at, 2),
        'statuses_during_outage': dict(during),
        'daemons_started': len(started),
        'daemons_started_in_outage': len(in_outage),
        'daemons_warned_at_startup': len(warned),
        'daemons_started_in_outage_answering_503': len(outage_daemons),
        'all_daemons_back_seconds': round(all_back, 2),
        '503_started_2s_after_return': len(late_503),
        **recycling(log),
        'test_seconds': round(time.monotonic() - start, 1),
    })
    assert masters == {master}, (masters, master, server.logs())
    assert result.problems == [], result.summary() + '\n' + server.logs()
    assert outage and all(c.retry_after == RETRY_AFTER for c in outage)
    assert result.max_seconds(503) < HANG_BOUND, result.summary()
    assert set(during) == {503}, (dict(during), result.summary())
    # daemons that started in the outage warned, came up and answered 503
    assert outage_daemons, server.logs()
    assert outage_daemons <= warned, (outage_daemons, warned, server.logs())
    assert in_outage <= set(result.pids), (in_outage, result.pids)
    assert watch.seen() <= started, (watch.seen(), started)
    # only 503s while it was down; served again within the bound
    assert not late_503, [(c.pid, round(c.start - restarted_at, 2))
                          for c in late_503]
    # ZODB logs the disconnections with their tracebacks (a load or a
    # tpc_finish cut off); nothing may have escaped to mod_wsgi or Apache.
    errors = [line for line in log.splitlines()
              if any(marker in line for marker in MOD_WSGI_ERRORS)]
    assert errors == [], '\n'.join(errors[:20])

    left = server.stop()
    assert left == [], left
    zeo.stop()
    data_fs = os.path.join(zeo.var, 'data', 'Data.fs')
    assert fstest_outcome(data_fs) == 'clean'
    scenario.verify(result, file_storage=data_fs, allow_503=True)
    assert result.problems == [], result.summary()
