"""``pshell app.ini`` on the live database, next to a running ``pserve``.

Statements are piped into ``pshell -p python`` (the plain Python shell
reads them from stdin when it is not a terminal). With ``server_sync``
in the URI, what pshell commits is on the very next request: no sleeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

from tests.functional import conftest as fconf

HERE = os.path.dirname(os.path.abspath(__file__))








def pshell(ini: str, statements: str) -> str:
    """Pipe ``statements`` into ``pshell -p python ini``; its stdout."""
    proc = subprocess.run(
        [os.path.join(fconf.BIN, 'pshell'), '-p', 'python', ini],
        input=textwrap.dedent(statements),
        capture_output=True,
        text=True,
        cwd=os.path.dirname(ini),
        env=fconf.child_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    # code.interact prints tracebacks of failed statements on stderr.
    assert 'Traceback' not in proc.stderr, proc.stderr
    return proc.stdout


def names(app) -> list:
    status, _, body = app.request('/?format=json&size=1000')
    assert status == 200, body
    return [item['name'] for item in json.loads(body)['items']]


def test_pshell_commit_is_seen_by_the_next_request(
    zeo_server, servers, tmp_path
):
    ini = fconf.write_ini(tmp_path, zeo_server.uri(server_sync='true'))
    app = servers(fconf.pserve(ini))
    assert names(app) == []  # pserve bootstrapped the root
    body = json.dumps({'name': 'from_web', 'type': 'item'}).encode()
    assert app.request(
        '/', method='POST', data=body, headers=fconf.JSON_HEADERS
    )[0] == 201

    out = pshell(ini, """
        from pyramid_zeostore.app.content import Item
        print('WEB', sorted(root))
        print('KINDS', type(root).__name__, root is zodb_root['app_root'])
        print('HAVE', conn is root._p_jar, db is conn.db(), tm is request.tm)
        root['from_shell'] = Item(title='made in pshell')
        commit()
        print('COMMITTED')
    """)
    assert "WEB ['from_web']" in out  # pshell sees the app's writes
    assert 'KINDS Folder True' in out
    assert 'HAVE True True True' in out
    assert 'COMMITTED' in out
    # The very next request, no sleep: server_sync makes it read fresh.
    assert names(app) == ['from_shell', 'from_web']
    status, _, body = app.request('/from_shell?format=json')
    assert status == 200
    assert json.loads(body)['attributes'] == {'title': 'made in pshell'}


def test_pshell_abort_exit_and_read_your_writes(
    zeo_server, servers, tmp_path
):
    ini = fconf.write_ini(tmp_path, zeo_server.uri(server_sync='true'))
    app = servers(fconf.pserve(ini))
    out = pshell(ini, """
        from pyramid_zeostore.app.content import Item
        root['kept'] = Item()
        commit()
        root['aborted'] = Item()
        abort()
        print('AFTER_ABORT', sorted(root))
        root['never_committed'] = Item()
        zodb_root['stray'] = 1
        print('PENDING', sorted(root))
    """)
    assert "AFTER_ABORT ['kept']" in out
    assert "PENDING ['kept', 'never_committed']" in out
    assert names(app) == ['kept']  # aborted at exit: never saved

    # A later session agrees, then commits and requests at once from
    # inside the session, 20 times: each request sees its commit.
    out = pshell(ini, f"""
        import urllib.error, urllib.request
        from pyramid_zeostore.app.content import Item
        print('AGAIN', sorted(root), 'stray' in zodb_root)
        misses = []
        for i in range(20):
            root['n%02d' % i] = Item()
            commit()
            url = '{app.url}/n%02d?format=json' % i
            try:
                urllib.request.urlopen(url, timeout=20).read()
            except urllib.error.HTTPError as e:
                misses.append((i, e.code))

        print('MISSES', misses)
    """)
    assert "AGAIN ['kept'] False" in out
    assert 'MISSES []' in out, out
    assert names(app) == ['kept'] + [f'n{i:02d}' for i in range(20)]
