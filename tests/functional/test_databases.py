"""Databases over a real ZEO server: lazy, fork-safe, one root for many.

Nothing opens before the first use; a forked child opens a ZEO client of
its own and does not hang, and the parent's client goes on; a database
closed and opened again works; four processes bootstrapping one empty
database at once (each says it is ready on a pipe, then all are let go
together) make one root; the default appmaker is idempotent; a process
that exits without closing still closes its storage; and an open that
fails on an absent ZEO socket closes what it had opened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import transaction

from pyramid_zeostore import (
    Databases,
    DatabaseUnavailable,
    default_appmaker,
    parse_settings,
)
from tests.functional import conftest as fconf


def databases_for(uri: str, **settings) -> Databases:
    parsed = parse_settings({'zodb_uri': uri, **settings})
    return Databases(parsed.databases, parsed.connect_timeout)


def wait_child(pid: int, timeout: float = 30.0) -> int:
    """Exit status of child ``pid``; kill it and fail if it hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f'child {pid} hung for {timeout}s')


def commit_value(db, key, value):
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = db.open(transaction_manager=tm)
    try:
        conn.root()[key] = value
        tm.commit()
    finally:
        conn.close()


def read_root(db):
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = db.open(transaction_manager=tm)
    try:
        return dict(conn.root())
    finally:
        tm.abort()
        conn.close()


def test_nothing_opens_until_first_use(zeo_server):
    databases = databases_for(zeo_server.uri())
    assert not databases.is_open
    db = databases.get()
    assert databases.is_open
    assert databases.get() is db
    databases.close()
    assert not databases.is_open


def test_forked_child_gets_its_own_client_and_does_not_hang(zeo_server):
    databases = databases_for(zeo_server.uri())
    parent_db = databases.get()
    commit_value(parent_db, 'parent', 1)
    parent_storage = id(parent_db.storage)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write, report, leave without cleanup
        code = 1
        try:
            os.close(read_fd)
            db = databases.get()
            shared = db is parent_db or id(db.storage) == parent_storage
            commit_value(db, 'child', os.getpid())
            seen = read_root(db)
            os.write(write_fd, f'{int(shared)} {seen.get("parent")}'.encode())
            databases.close()
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    assert wait_child(pid) == 0
    with os.fdopen(read_fd) as f:
        shared, parent_value = f.read().split()
    assert shared == '0', 'the child reused the parent ZEO client'
    assert parent_value == '1'
    # The parent's client still works after the fork, and sees the child.
    commit_value(parent_db, 'parent', 2)
    databases.sync()
    seen = read_root(databases.get())
    assert seen == {'parent': 2, 'child': pid}
    databases.close()


def test_fork_after_close_and_reopen(zeo_server):
    databases = databases_for(zeo_server.uri())
    databases.get()
    databases.close()
    db = databases.get()  # reopened in the same process
    commit_value(db, 'again', True)
    assert read_root(db) == {'again': True}
    databases.close()


BOOTSTRAP = textwrap.dedent(
    """
    import os, sys, time
    from pyramid_zeostore import bootstrap, default_appmaker, parse_settings
    from pyramid_zeostore.databases import Databases

    uri = sys.argv[1]
    ready, go = map(int, sys.argv[-2:])  # a StartingLine
    parsed = parse_settings({'zodb_uri': uri})
    databases = Databases(parsed.databases, parsed.connect_timeout)

    def slow_appmaker(zodb_root):
        # Widen the race: read, wait, then create.
        missing = 'app_root' not in zodb_root
        time.sleep(0.3)
        return default_appmaker(zodb_root)

    os.write(ready, b'.')
    os.read(go, 1)  # returns when the test lets all four go
    db = databases.get()  # all open the empty database at once
    bootstrap(db, slow_appmaker)
    conn = db.open()
    print(conn.root()['app_root']._p_oid.hex())
    conn.close()
    databases.close()
    """
)


def test_four_processes_bootstrap_one_root(zeo_server, tmp_path):
    line = fconf.StartingLine()
    procs = [
        subprocess.Popen(
            [sys.executable, '-c', BOOTSTRAP, zeo_server.uri(),
             *line.args()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=line.pass_fds,
        )
        for _ in range(4)
    ]
    try:
        line.wait_ready(4)  # all four started, before the signal
        line.go()
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        line.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * 4, outs
    oids = {out.strip() for out, _ in outs}
    assert len(oids) == 1, outs
    databases = databases_for(zeo_server.uri())
    root = read_root(databases.get())
    assert list(root) == ['app_root']
    assert root['app_root']._p_oid.hex() == oids.pop()
    databases.close()


def test_default_appmaker_is_idempotent(zeo_server):
    databases = databases_for(zeo_server.uri())
    db = databases.get()
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = db.open(transaction_manager=tm)
    first = default_appmaker(conn.root())
    assert default_appmaker(conn.root()) is first
    tm.abort()
    conn.close()
    databases.close()


EXIT_WITHOUT_CLOSE = textwrap.dedent(
    """
    import sys, transaction
    from pyramid_zeostore import Databases, parse_settings

    parsed = parse_settings({'zodb_uri': sys.argv[1]})
    db = Databases(parsed.databases).get()
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = db.open(transaction_manager=tm)
    conn.root()['saved'] = True
    tm.commit()
    close = db.close

    def close_and_mark():
        open(sys.argv[2], 'w').close()
        close()

    db.close = close_and_mark
    # The connection stays open on an explicit manager with no transaction
    # (ZODB's DB.close then raises NoTransaction), and nothing is closed:
    # the interpreter's exit must still close the storage.
    """
)


def test_databases_are_closed_at_exit(tmp_path):
    path = tmp_path / 'Data.fs'
    subprocess.run(
        [
            sys.executable, '-c', EXIT_WITHOUT_CLOSE, f'file://{path}',
            str(tmp_path / 'closed'),
        ],
        check=True,
        timeout=60,
    )
    assert (tmp_path / 'closed').exists()
    assert (tmp_path / 'Data.fs.index').exists()


def test_failed_open_closes_what_was_opened(tmp_path):
    databases = Databases(
        parse_settings(
            {
                'zodb_uri': 'memory://',
                'zodb_uri.zeo': f'zeo://{tmp_path}/absent.sock',
            }
        ).databases,
        connect_timeout=0.1,
    )
    with pytest.raises(DatabaseUnavailable) as info:
        databases.get()
    assert "database 'zeo' is unavailable" in str(info.value)
    assert not databases.is_open
