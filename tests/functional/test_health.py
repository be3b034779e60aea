"""``GET /@@health`` of a real pserve over a real ZEO server, which is
killed and restarted under it."""

from __future__ import annotations

import json
import signal
import time

from tests.functional import conftest as fconf


def health(app):
    started = time.monotonic()
    status, headers, body = app.request('/@@health')
    return status, headers, json.loads(body), time.monotonic() - started


def test_health_follows_the_zeo_server(zeo_server, servers, tmp_path):
    ini = fconf.write_ini(
        tmp_path, zeo_server.uri(), **{'zeostore.connect_timeout': 1}
    )
    app = servers(fconf.pserve(ini))

    status, _, body, _ = health(app)
    assert status == 200, body
    (primary,) = body['databases']
    assert primary['connected'] and primary['address'] == zeo_server.sock
    assert primary['ping_ms'] > 0
    assert primary['connections'] >= 1  # this pserve's client at least
    assert primary['last_transaction']  # the root the startup check made

    zeo_server.stop(signal.SIGKILL)
    status, headers, body, took = health(app)
    assert status == 503, body
    assert headers['Retry-After'] == '5'
    assert body['down'] == ['']
    assert 'no ZEO server answered' in body['databases'][0]['error']
    assert took < 1 + 10  # the bound, with room for a loaded machine

    zeo_server.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, _, body, _ = health(app)
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200, body
