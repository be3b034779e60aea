"""``pzeo adduser``, ``deluser`` and ``users`` as a user runs them: the
password from a pipe or, without echo, from a terminal (a pty); the user
then writes to the ready app with HTTP Basic."""

from __future__ import annotations

import base64
import os
import pty
import select
import subprocess
import time

from webtest import TestApp

from pyramid_zeostore.app import main
from pyramid_zeostore.databases import close_all

from .conftest import BIN, child_env

SECRET = 'pzeo-users-test-secret-0123456789abcdef'


def make_ini(tmp_path):
    ini = tmp_path / 'app.ini'
    ini.write_text(
        '[app:main]\nuse = egg:pyramid_zeostore\n'
        f'zodb_uri = file://{tmp_path}/Data.fs\n'
        f'zeostore.secret = {SECRET}\n'
    )
    return str(ini)


def pzeo(*args, stdin=''):
    return subprocess.run(
        [os.path.join(BIN, 'pzeo'), *args], input=stdin, text=True,
        capture_output=True, timeout=120, env=child_env(),
    )


def test_add_list_change_remove_users_from_a_pipe(tmp_path):
    ini = make_ini(tmp_path)
    listed = pzeo('users', ini)
    assert listed.returncode == 0 and 'no users' in listed.stdout
    added = pzeo('adduser', ini, 'ann', '--role', 'editor',
                 stdin='s3cret-pass\n')
    assert added.returncode == 0, added.stderr
    assert "added user 'ann' (editor)" in added.stdout
    assert 's3cret-pass' not in added.stdout + added.stderr
    listed = pzeo('users', ini)
    assert listed.stdout.startswith('ann\teditor\tadded ')
    token = base64.b64encode(b'ann:s3cret-pass').decode()
    app = TestApp(main({'__file__': ini}, **{
        'zodb_uri': f'file://{tmp_path}/Data.fs', 'zeostore.secret': SECRET,
    }), extra_environ={'HTTP_AUTHORIZATION': f'Basic {token}'})
    app.post_json('/', {'name': 'by-ann'}, status=201)
    close_all()
    changed = pzeo('adduser', ini, 'ann', stdin='other-pass\n')
    assert "changed user 'ann' (manager)" in changed.stdout
    assert pzeo('deluser', ini, 'ann').returncode == 0
    missing = pzeo('deluser', ini, 'ann')
    assert missing.returncode == 1 and "no user 'ann'" in missing.stderr
    bad = pzeo('adduser', ini, 'a:b', stdin='x\n')
    assert bad.returncode == 2 and 'without ":"' in bad.stderr
    empty = pzeo('adduser', ini, 'bob', stdin='\n')
    assert empty.returncode == 2 and 'must not be empty' in empty.stderr


def read_until(fd, text, limit=60.0):
    out = b''
    deadline = time.monotonic() + limit
    while text.encode() not in out:
        assert time.monotonic() < deadline, out
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    return out.decode(errors='replace')


def test_a_terminal_is_asked_twice_without_echo(tmp_path):
    ini = make_ini(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: pzeo on the pty
        os.execve(os.path.join(BIN, 'pzeo'),
                  ['pzeo', 'adduser', ini, 'tty-user'], child_env())
    try:
        seen = read_until(fd, 'Password: ')
        os.write(fd, b'typed-secret\n')
        seen += read_until(fd, 'Password again: ')
        os.write(fd, b'typed-secret\n')
        seen += read_until(fd, "added user 'tty-user'")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert 'typed-secret' not in seen  # no echo
    assert 'tty-user' in pzeo('users', ini).stdout


def test_two_different_passwords_change_nothing(tmp_path):
    ini = make_ini(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(os.path.join(BIN, 'pzeo'),
                  ['pzeo', 'adduser', ini, 'tty-user'], child_env())
    try:
        read_until(fd, 'Password: ')
        os.write(fd, b'one-secret\n')
        read_until(fd, 'Password again: ')
        os.write(fd, b'another-secret\n')
        seen = read_until(fd, 'nothing was changed')
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 1, seen
    assert 'no users' in pzeo('users', ini).stdout
