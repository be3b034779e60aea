"""Backends, one line to switch: the ready app runs unchanged but for
``zodb_uri`` on ``file://`` (one process), ``zeo://`` (a real runzeo),
RelStorage's ``sqlite://`` (embedded) and ``postgres://`` (a real
PostgreSQL, tests/functional/postgres.py); a file database moves into
PostgreSQL with ``pzeo copy``."""

from __future__ import annotations

import datetime
import json
import os
import subprocess

import pytest

from tests.functional.conftest import (
    BIN,
    JSON_HEADERS,
    child_env,
    pserve,
    write_ini,
)
from tests.functional.postgres import require_relstorage, running_postgres
from tests.unit.test_commands_copy import COPIED, counts


def pzeo(*args, timeout=300):
    return subprocess.run(
        [os.path.join(BIN, 'pzeo'), *args],
        capture_output=True, text=True, env=child_env(), timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def add(server, path, name, kind='item', **attributes):
    status, _, body = server.request(
        path, 'POST',
        json.dumps(
            {'name': name, 'type': kind, 'attributes': attributes}
        ).encode(),
        JSON_HEADERS,
    )
    assert status == 201, body


def listed(server, path='/'):
    status, _, body = server.request(path + '?format=json&size=1000')
    assert status == 200, body
    return {item['name'] for item in json.loads(body)['items']}


def health(server):
    status, _, body = server.request('/@@health')
    data = json.loads(body)
    assert status == 200 and data['status'] == 'ok', data
    (db,) = data['databases']
    assert db['connected'] and db['error'] is None
    return db


def last_transaction(server):
    return datetime.datetime.fromisoformat(
        health(server)['last_transaction']
    )


def serve(directory, uri, servers):
    os.makedirs(directory, exist_ok=True)
    ini = write_ini(directory, uri)
    return ini, servers(pserve(ini), 60)


@pytest.fixture(params=['file', 'zeo', 'sqlite'])
def backend(request, tmp_path):
    """(name, zodb_uri) of each backend that needs no server of its own
    but runzeo."""
    if request.param == 'file':
        return 'file', f'file://{tmp_path}/var/Data.fs'
    if request.param == 'zeo':
        return 'zeo', request.getfixturevalue('zeo_server').uri()
    require_relstorage()
    return 'sqlite', f'sqlite://?data_dir={tmp_path}/var/sqlite'


def test_the_same_app_on_each_backend(backend, tmp_path, servers):
    name, uri = backend
    os.makedirs(tmp_path / 'var', exist_ok=True)
    ini, server = serve(tmp_path / 'app', uri, servers)
    add(server, '/', 'docs', 'folder')
    for n in range(3):
        add(server, '/docs', f'doc-{n}', n=n)
    assert listed(server, '/docs') == {'doc-0', 'doc-1', 'doc-2'}
    # The health check sees each commit (RelStorage: a new instance asks
    # the database, not what the app's instance last polled).
    seen = last_transaction(server)
    add(server, '/', 'more')
    assert last_transaction(server) > seen
    assert health(server)['ping_ms'] is None or name == 'zeo'
    server.stop()
    # Persistent: a new process finds it all, and writes on.
    _, server = serve(tmp_path / 'app', uri, servers)
    assert listed(server) == {'docs', 'more'}
    add(server, '/docs', 'doc-3')
    assert len(listed(server, '/docs')) == 4
    server.stop()
    status = pzeo('status', ini)
    assert status.returncode == 0, status.stderr
    assert 'zodb_uri: up at ' in status.stdout
    assert 'last transaction 20' in status.stdout


def test_postgresql_scheme_is_a_clear_configuration_error(tmp_path):
    ini = write_ini(tmp_path, 'postgresql://zodb:pw@127.0.0.1:5432/zodb')
    status = pzeo('status', ini)
    assert status.returncode == 2
    assert (
        'configuration error: zodb_uri: expected postgres://user:password@'
        "host:port/dbname: RelStorage's scheme for PostgreSQL is "
        'postgres://, not postgresql://'
    ) in status.stderr
    assert 'pw@' not in status.stderr


@pytest.mark.slow
def test_file_database_moves_to_postgres(tmp_path, servers):
    file_uri = f'file://{tmp_path}/var/Data.fs'
    os.makedirs(tmp_path / 'var')
    with running_postgres() as pg:
        # 1. The app on a file, filled through its API.
        _, server = serve(tmp_path / 'file', file_uri, servers)
        add(server, '/', 'docs', 'folder', title='Docs')
        for n in range(20):
            add(server, '/docs', f'doc-{n}', n=n)
        server.stop()  # it holds the file's lock
        # 2. Into PostgreSQL.
        pg_uri = pg.create_database('zodb')
        copy = pzeo('copy', file_uri, pg_uri)
        assert copy.returncode == 0, copy.stderr
        match = COPIED.search(copy.stdout)
        transactions, records, blobs = (int(n) for n in match.groups())
        assert (transactions, records, blobs) == counts(file_uri)
        assert transactions == 1 + 1 + 1 + 20  # root, app root, 21 POSTs
        assert 'zodb:***@127.0.0.1' in copy.stdout
        assert 'zodb-secret' not in copy.stdout + copy.stderr
        # What PostgreSQL itself holds (RelStorage, history kept).
        assert pg.psql(
            'SELECT count(*) FROM transaction WHERE tid > 0', 'zodb'
        ).strip() == str(transactions)
        assert pg.psql(
            'SELECT count(*) FROM object_state', 'zodb'
        ).strip() == str(records)
        # 3. The same app, one line changed, serves it from PostgreSQL.
        ini, server = serve(tmp_path / 'pg', pg_uri, servers)
        names = listed(server, '/docs')
        assert names == {f'doc-{n}' for n in range(20)}
        seen = last_transaction(server)
        add(server, '/docs', 'written-in-postgres', via='postgres')
        assert 'written-in-postgres' in listed(server, '/docs')
        assert last_transaction(server) > seen
        status = pzeo('status', ini)
        assert status.returncode == 0, status.stderr
        assert (
            f'zodb_uri: up at postgres://zodb:***@127.0.0.1:{pg.port}/zodb'
        ) in status.stdout
        assert 'zodb-secret' not in status.stdout
        server.stop()
        cluster = pg.processes()
        assert cluster  # the postmaster and its workers
    # pg_ctl stop -m fast ran; nothing of that cluster is left.
    assert [p for p in cluster if os.path.exists(f'/proc/{p}')] == []


@pytest.mark.slow
def test_postgres_down_is_reported(tmp_path, servers):
    """The health check and ``pzeo status`` ask PostgreSQL itself."""
    with running_postgres() as pg:
        uri = pg.create_database('zodb')
        ini, server = serve(tmp_path / 'pg', uri, servers)
        add(server, '/', 'x')
        health(server)
        pg.stop()
        status, _, body = server.request('/@@health')
        assert status == 503, body
        (db,) = json.loads(body)['databases']
        assert db['connected'] is False and db['error']
        assert 'zodb-secret' not in body.decode()
        result = pzeo('status', ini, '--timeout', '2')
        assert result.returncode == 1
        assert 'zodb_uri: DOWN' in result.stdout
        # requests get a 503 with Retry-After, not a traceback page
        status, headers, body = server.request('/x?format=json')
        assert status == 503, body
        assert headers['Retry-After']
        status, headers, body = server.request(
            '/', 'POST', json.dumps({'name': 'y'}).encode(), JSON_HEADERS
        )
        assert status == 503, body
        assert b'may or may not have been saved' in body
        server.stop()
