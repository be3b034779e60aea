"""A script on the live database while pserve serves it: ``open_root``.

The script is a separate Python process that names the app's ini, as a
cron job would. With ``server_sync`` in the URI the app's next request
sees what the script committed: no sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.functional import conftest as fconf

SCRIPT = textwrap.dedent(
    """
    import sys
    from pyramid_zeostore import open_root
    from pyramid_zeostore.app.content import Item

    target = sys.argv[1]
    for attempt in open_root(target, attempts=5):
        with attempt as root:
            for n in range(int(sys.argv[2])):
                root.add(f'{sys.argv[3]}-{n}', Item(n=n))
    with open_root(target) as root:
        print(len(root))
    """
)


def run_script(target: str, count: int, prefix: str) -> int:
    proc = subprocess.run(
        [sys.executable, '-c', SCRIPT, target, str(count), prefix],
        capture_output=True,
        text=True,
        env=fconf.child_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1])


def names(app) -> set:
    status, _, body = app.request('/?format=json&size=1000')
    assert status == 200, body
    return {item['name'] for item in json.loads(body)['items']}


def test_script_writes_are_seen_by_the_next_request(
    zeo_server, servers, tmp_path
):
    ini = fconf.write_ini(tmp_path, zeo_server.uri(server_sync='true'))
    app = servers(fconf.pserve(ini))
    assert names(app) == set()

    assert run_script(ini, 3, 'ini') == 3  # through the app's ini
    assert names(app) == {'ini-0', 'ini-1', 'ini-2'}

    # and through the bare URI, as a script without the ini would
    assert run_script(zeo_server.uri(), 2, 'uri') == 5
    assert names(app) == {'ini-0', 'ini-1', 'ini-2', 'uri-0', 'uri-1'}
    status, _, body = app.request('/uri-1?format=json')
    assert status == 200 and json.loads(body)['attributes'] == {'n': 1}


def test_scripts_and_requests_writing_at_once_lose_nothing(
    zeo_server, servers, tmp_path
):
    """Two scripts adding to the root folder while the app does: every
    add of each lands (conflicts are resolved or retried)."""
    ini = fconf.write_ini(tmp_path, zeo_server.uri(server_sync='true'))
    app = servers(fconf.pserve(ini))
    procs = [
        subprocess.Popen(
            [sys.executable, '-c', SCRIPT, ini, '40', f's{i}'],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=fconf.child_env(),
        )
        for i in range(2)
    ]
    try:
        for n in range(20):
            body = json.dumps({'name': f'web-{n}', 'type': 'item'}).encode()
            status = app.request(
                '/', 'POST', body, fconf.JSON_HEADERS
            )[0]
            assert status == 201
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    expected = {f'web-{n}' for n in range(20)}
    expected |= {f's{i}-{n}' for i in range(2) for n in range(40)}
    assert names(app) == expected
