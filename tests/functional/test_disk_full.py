"""A ZEO server whose disk fills up: 503 with a message, not a 500;
nothing acknowledged is lost and reads go on.

The server's files live on a 3 MiB tmpfs mounted for the test (root only:
the test says so when it cannot mount one).
"""

from __future__ import annotations

import base64
import os
import subprocess

import pytest
from webtest import TestApp

from pyramid_zeostore import get_databases
from pyramid_zeostore.app import main
from pyramid_zeostore.app.users import add_user
from pyramid_zeostore.databases import close_all
from pyramid_zeostore.testing import running_zeo_server

BASIC = 'Basic ' + base64.b64encode(b'editor:pw-1234').decode()


@pytest.fixture
def small_disk(tmp_path):
    path = tmp_path / 'disk'
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs',
                    str(path)], check=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run(['umount', '-l', str(path)], timeout=30)


def test_a_full_disk_answers_503_then_writes_resume(small_disk, tmp_path):
    with running_zeo_server(str(small_disk)) as server:
        wsgi = main({}, **{
            'zodb_uri': server.uri(),
            'zeostore.secret': 's' * 40,
            'zeostore.lock_file': str(tmp_path / 'lock'),
            'zeostore.max_body': '2mb', 'zeostore.max_value': '2mb',
        })
        db = get_databases(wsgi.registry).get('')
        add_user(db, 'editor', 'pw-1234', 'editor')
        app = TestApp(wsgi, extra_environ={'HTTP_AUTHORIZATION': BASIC})
        statuses = []
        for n in range(8):  # 700 KB each: the 3 MiB fill up by the 5th
            r = app.post_json(
                '/', {'name': f'big{n}', 'attributes': {'v': 'x' * 700_000}},
                status='*',
            )
            statuses.append(r.status_int)
            if r.status_int == 503:
                break
        assert statuses[-1] == 503, statuses
        assert set(statuses[:-1]) == {201}
        assert r.headers['Retry-After']
        assert 'out of disk space' in r.json['message']
        assert 'nothing was saved' in r.json['message']
        # the refused item is not there, every acknowledged one is, and
        # the server still answers
        app.get(f'/big{len(statuses) - 1}', status=404)
        listing = app.get('/?format=json').json
        assert listing['length'] == len(statuses) - 1
        close_all()
    assert 'No space left on device' in open(small_disk / 'zeo.log').read()
