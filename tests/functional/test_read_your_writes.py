"""Read your writes across worker processes, without ``server_sync``.

gunicorn with 2 workers over one ZEO server; the client adds a child and
at once lists the folder, each request served by whichever worker takes
it. The answer to the add carries the ``zeostore_sync`` cookie, so the
listing syncs with ZEO first and holds the child every time, though the
URI does not ask every transaction for that round trip.
"""

from __future__ import annotations

import http.client
import http.cookies
import json
import threading

import pytest

from tests.functional import conftest as fconf

ROUNDS = 100


def client(port: int, cookie: str):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)

    def request(method, path, body=None, extra=''):
        headers = dict(fconf.JSON_HEADERS)
        headers['Cookie'] = headers['Cookie'] + extra
        conn.request(method, path, body, headers)
        resp = conn.getresponse()
        return resp, resp.read()

    return conn, request


def rounds(port: int, prefix: str, found: dict, sync: bool = True) -> None:
    """Add a child, then list from it: is it there?"""
    conn, request = client(port, '')
    try:
        for n in range(ROUNDS):
            name = f'{prefix}{n:04}'
            resp, body = request(
                'POST', '/',
                json.dumps({'name': name, 'type': 'item'}).encode(),
            )
            assert resp.status == 201, body
            jar = http.cookies.SimpleCookie(resp.headers['Set-Cookie'])
            assert jar['zeostore_sync'].value == '1'
            resp, body = request(
                'GET', f'/{name}?format=json',
                extra='; zeostore_sync=1' if sync else '',
            )
            found['pids'].add(resp.headers['X-Worker-Pid'])
            assert resp.status in (200, 404), body
            found['stale'] += resp.status == 404
            found['reads'] += 1
    finally:
        conn.close()


def serve(zeo_server, servers, tmp_path):
    # Each worker applies invalidations 20 ms late, as a busy one would.
    ini = fconf.write_ini(
        tmp_path, zeo_server.uri(), worker_pid=True,
        **{'pyramid.includes': 'tests.functional.workerpid',
           'zeostore_test.invalidation_delay': '0.02'},
    )
    return servers(fconf.gunicorn(ini, 2), timeout=60)


def run(port: int, sync: bool) -> dict:
    found = {'pids': set(), 'stale': 0, 'reads': 0}
    threads = [
        threading.Thread(target=rounds, args=(port, p, found, sync))
        for p in ('a', 'b')
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads)
    assert found['reads'] == 2 * ROUNDS
    return found


@pytest.mark.slow
def test_a_clients_reads_see_its_writes_in_any_worker(
    zeo_server, servers, tmp_path
):
    app = serve(zeo_server, servers, tmp_path)
    found = run(app.port, sync=True)
    assert len(found['pids']) == 2, 'both workers should have served reads'
    assert found['stale'] == 0, (
        f"{found['stale']} of {found['reads']} reads missed their write"
    )


@pytest.mark.slow
def test_without_the_cookie_reads_in_another_worker_can_be_stale(
    zeo_server, servers, tmp_path
):
    """The control: what the cookie prevents does happen without it."""
    app = serve(zeo_server, servers, tmp_path)
    found = run(app.port, sync=False)
    print(f"\nwithout the cookie: {found['stale']} of {found['reads']} "
          'reads missed their write')
    assert found['stale'] > 0
