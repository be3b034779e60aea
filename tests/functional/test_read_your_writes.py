"""Read your writes across processes, without ``server_sync``.

Two app processes over one ZEO server, each applying ZEO's invalidations
100 ms late (as a busy client might). The client adds a child through
one and at once reads it through the other. The answer to the add
carries the ``zeostore_sync`` cookie; a read that sends it back syncs
with ZEO first and finds the child every time. The control: without the
cookie the other process answers from before the add.
"""

from __future__ import annotations

import http.client
import http.cookies
import json

import pytest

from tests.functional import conftest as fconf

ROUNDS = 30

pytestmark = pytest.mark.slow


def serve(zeo_server, servers, directory, **uri):
    directory.mkdir()
    ini = fconf.write_ini(
        directory, zeo_server.uri(**uri), threads=1,
        **{'pyramid.includes': 'tests.functional.workerpid',
           'zeostore_test.invalidation_delay': '0.1'},
    )
    return servers(fconf.pserve(ini))


def request(port, method, path, body=None, cookie=''):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    try:
        headers = dict(fconf.JSON_HEADERS)
        if cookie:
            headers['Cookie'] = cookie.lstrip('; ')
        conn.request(method, path, body, headers)
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def write_here_read_there(zeo_server, servers, tmp_path, send_cookie):
    """Stale reads out of ROUNDS."""
    here = serve(zeo_server, servers, tmp_path / 'here')
    there = serve(zeo_server, servers, tmp_path / 'there')
    stale = 0
    for n in range(ROUNDS):
        name = f'c{n}'
        resp, body = request(
            here.port, 'POST', '/',
            json.dumps({'name': name, 'type': 'item'}).encode(),
        )
        assert resp.status == 201, body
        jar = http.cookies.SimpleCookie(resp.headers['Set-Cookie'])
        assert jar['zeostore_sync'].value == '1'
        cookie = '; zeostore_sync=1' if send_cookie else ''
        resp, body = request(
            there.port, 'GET', f'/{name}?format=json', cookie=cookie
        )
        assert resp.status in (200, 404), body
        stale += resp.status == 404
    return stale


def test_a_clients_reads_see_its_writes_in_another_process(
    zeo_server, servers, tmp_path
):
    stale = write_here_read_there(zeo_server, servers, tmp_path, True)
    assert stale == 0, f'{stale} of {ROUNDS} reads missed their write'


def test_without_the_cookie_another_process_can_be_stale(
    zeo_server, servers, tmp_path
):
    """The control: what the cookie prevents does happen without it."""
    stale = write_here_read_there(zeo_server, servers, tmp_path, False)
    print(f'\nwithout the cookie: {stale} of {ROUNDS} reads missed '
          'their write')
    assert stale > 0


def test_with_server_sync_a_threads_first_read_sees_a_fresh_write(
    zeo_server, servers, tmp_path
):
    """server_sync: every read makes its round trip, the first one of a
    thread too (its kept connection opened without one)."""
    here = serve(zeo_server, servers, tmp_path / 'here')
    there = serve(zeo_server, servers, tmp_path / 'there',
                  server_sync='true')
    # 'there' has its database open (a write: a pooled connection), but
    # its one thread has made no read yet
    resp, body = request(there.port, 'POST', '/', json.dumps(
        {'name': 'warm', 'type': 'item'}).encode())
    assert resp.status == 201, body
    resp, body = request(here.port, 'POST', '/', json.dumps(
        {'name': 'fresh', 'type': 'item'}).encode())
    assert resp.status == 201, body
    resp, body = request(there.port, 'GET', '/fresh?format=json')
    assert resp.status == 200, body
