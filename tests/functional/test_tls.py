"""ZEO over mutual TLS, for real: runzeo with ``<ssl>`` + ``authenticate``
on 127.0.0.1, the ready app under ``pserve`` as its client.

A client with a certificate of the server's CA commits through it. A
client without one, or with one of another CA, is dropped by the server
right after the TLS handshake; ZEO's client then retries silently (every
few milliseconds, logging nothing useful), so the app probes the address
itself when its bounded wait is over and puts the reason in the log and
in the startup error. Durations are asserted with generous bounds only
(they catch hangs, e.g. ZEO's own 30 s wait).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from pyramid_zeostore import zeoserver
from tests.functional import conftest as fconf

pytestmark = pytest.mark.deploy

CONNECT_TIMEOUT = 1.0
#: a 503 or a failed startup must come long before ZEO's own 30 s wait
BOUND = 20.0

ZEO_CONF = """\
<zeo>
  address 127.0.0.1:{port}
  {ssl}
</zeo>
<filestorage 1>
  path {var}/Data.fs
</filestorage>
<eventlog>
  level INFO
  <logfile>
    path {var}/zeo.log
  </logfile>
</eventlog>
"""

NO_CERT = 'this client sent no certificate'
REFUSED_CERT = "refused this client's certificate"



@pytest.fixture(scope='module')
def tls_zeo(certs, tmp_path_factory):
    """runzeo over TLS on a free loopback port; stopped by its pid."""
    var = tmp_path_factory.mktemp('tls-zeo')
    port = fconf.free_port()
    conf = var / 'zeo.conf'
    conf.write_text(
        ZEO_CONF.format(port=port, ssl=certs.server_ssl_block(), var=var)
    )
    proc = subprocess.Popen(
        zeoserver.runzeo_command(str(conf)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert zeoserver.wait_listening(('127.0.0.1', port), 30)
        yield port
    finally:
        zeoserver.stop_process(proc)


# A server that refuses the certificate looks absent: only ``strict``
# fails startup (the default warns and answers 503).
STRICT = {'zeostore.check_on_startup': 'strict'}


def app_ini(tmp_path, port, query, **settings):
    return fconf.write_ini(
        tmp_path,
        f'zeo://127.0.0.1:{port}?{query}',
        **{'zeostore.connect_timeout': str(CONNECT_TIMEOUT), **settings},
    )


def test_app_commits_over_tls_with_its_client_certificate(
    certs, tls_zeo, tmp_path, servers
):
    ini = app_ini(tmp_path, tls_zeo, certs.client_query())
    app = servers(fconf.pserve(ini))
    body = json.dumps({'name': 'over-tls', 'type': 'item'}).encode()
    status, _, _ = app.request(
        '/', method='POST', data=body, headers=fconf.JSON_HEADERS
    )
    assert status == 201, app.log()
    status, _, body = app.request('/?format=json')
    assert status == 200, app.log()
    assert 'over-tls' in [i['name'] for i in json.loads(body)['items']]
    assert 'unavailable' not in app.log()


@pytest.mark.parametrize(
    'client, reason',
    [(None, NO_CERT), ('intruder', REFUSED_CERT)],
    ids=['no-certificate', 'certificate-of-another-ca'],
)
def test_client_without_a_valid_certificate_gets_503_and_the_reason(
    certs, tls_zeo, tmp_path, servers, client, reason
):
    ini = app_ini(
        tmp_path,
        tls_zeo,
        certs.client_query(client),
        **{'zeostore.check_on_startup': 'false'},
    )
    app = servers(fconf.pserve(ini))
    started = time.monotonic()
    status, headers, body = app.request(
        '/', headers={'Accept': 'application/json'}
    )
    elapsed = time.monotonic() - started
    print(f'503 with {client or "no"} certificate after {elapsed:.2f}s')
    assert status == 503, app.log()
    assert headers['Retry-After'] == '5'
    assert json.loads(body)['error'] == 'Service Unavailable'
    assert CONNECT_TIMEOUT <= elapsed < BOUND
    # The reason is in the app's log, not in the page.
    log = app.log()
    assert f'127.0.0.1:{tls_zeo} within' in log
    assert reason in log, log
    assert reason.encode() not in body
    # The next request waits and explains again; never a 500.
    assert app.request('/?format=json')[0] == 503


@pytest.mark.parametrize(
    'client, reason',
    [(None, NO_CERT), ('intruder', REFUSED_CERT)],
    ids=['no-certificate', 'certificate-of-another-ca'],
)
def test_startup_with_a_bad_certificate_fails_naming_address_and_reason(
    certs, tls_zeo, tmp_path, client, reason
):
    ini = app_ini(tmp_path, tls_zeo, certs.client_query(client),
                  **STRICT)
    started = time.monotonic()
    proc = subprocess.run(
        [os.path.join(fconf.BIN, 'pserve'), ini],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=str(tmp_path), env=fconf.child_env(),
        timeout=120,
    )
    elapsed = time.monotonic() - started
    print(f'startup, {client or "no"} certificate: failed in {elapsed:.2f}s')
    output = proc.stdout.decode(errors='replace')
    assert proc.returncode != 0, output
    assert elapsed < BOUND + 10  # + starting Python and Pyramid
    error = [
        line for line in output.splitlines() if 'DatabaseUnavailable' in line
    ]
    assert error, output
    assert f'127.0.0.1:{tls_zeo} within' in error[-1]
    assert reason in error[-1]


def test_client_refusing_the_server_certificate_says_so(
    certs, tls_zeo, tmp_path
):
    # Our ssl_cafile is another CA's: this side refuses the server.
    query = certs.client_query().replace(certs.ca, certs.path('rogue.pem'))
    ini = app_ini(tmp_path, tls_zeo, query, **STRICT)
    proc = subprocess.run(
        [os.path.join(fconf.BIN, 'pserve'), ini],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=str(tmp_path), env=fconf.child_env(),
        timeout=120,
    )
    output = proc.stdout.decode(errors='replace')
    assert proc.returncode != 0
    assert 'this client refused the server certificate' in output, output
    assert 'CERTIFICATE_VERIFY_FAILED' in output
