"""The progress of long ``pzeo`` commands, the real program against a real
ZEO server: a tqdm bar on a terminal (a pseudo-terminal here), a plain
line per interval in a pipe, nothing with ``--quiet``.

``PZEO_PROGRESS_INTERVAL=0`` makes the pipe's lines come at every step, so
that a small database shows them; the commands' own reports on standard
output are the same in every mode.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

import pytest
import transaction

from pyramid_zeostore import Databases, Folder, open_root
from pyramid_zeostore.app.content import Item

from .conftest import child_env
from .test_pzeo_ops import PZEO, project

#: objects in the test database: more than a few progress steps
ITEMS = 3000
#: tqdm's bar: "DESC: 100%|####| 3007/3007 [00:01<00:00, 2.5k records/s]"
BAR = re.compile(r'(\d+)%\|.*\| *([\d.]+[kMG]?i?B?)/([\d.]+[kMG]?i?B?) \[')


#: a carriage return that is not a terminal's end of line (\r\n)
BARE_CR = re.compile(r'\r(?!\n)')


def on_terminal(*args, env=None, limit: float = 120.0) -> tuple[int, str]:
    """Run ``pzeo ARGS`` with its stdout and stderr on a pseudo-terminal;
    (exit status, everything it wrote there)."""
    master, slave = pty.openpty()
    env = dict(env or child_env(), COLUMNS='120', LINES='40')
    proc = subprocess.Popen(
        [PZEO, *map(str, args)], stdin=subprocess.DEVNULL, stdout=slave,
        stderr=slave, env=env, close_fds=True,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        status = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return status, b''.join(chunks).decode('utf-8', 'replace')


def in_pipe(*args, interval: str = '0', limit: float = 120.0, env=None):
    env = dict(env or child_env(), PZEO_PROGRESS_INTERVAL=interval)
    return subprocess.run(
        [PZEO, *map(str, args)], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, env=env, timeout=limit,
    )


def last_bar(text: str, desc: str) -> re.Match:
    """The last state of the bar named ``desc`` (tqdm redraws it after
    a carriage return)."""
    states = [
        part for part in re.split(r'[\r\n]', text)
        if part.startswith(f'{desc}:')
    ]
    assert states, text
    match = BAR.search(states[-1])
    assert match, states[-1]
    return match


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """A ZEO server whose database holds ITEMS items; the ini naming it
    and its zeo.conf."""
    from pyramid_zeostore.testing import running_zeo_server

    tmp = tmp_path_factory.mktemp('progress')
    with running_zeo_server(tmp / 'zeo') as server:
        ini, uri = project(tmp, server)
        with open_root(uri) as root:
            root.add('items', Folder())
            for i in range(ITEMS):
                root['items'].add(f'item-{i}', Item(title=f'item {i}'))
        transaction.abort()
        yield server, ini, uri, tmp


def test_verify_on_a_terminal_shows_a_bar(served):
    server, ini, _, _ = served
    status, text = on_terminal('verify', ini)
    assert status == 0, text
    bar = last_bar(text, 'verify storage 1')
    done, total = int(bar.group(2)), int(bar.group(3))
    assert bar.group(1) == '100' and done == total > ITEMS
    assert ' records/s]' in text
    assert BARE_CR.search(text)  # redrawn in place
    assert f'{done} records in ' in text and ': OK' in text


def test_verify_via_zeo_on_a_terminal_shows_a_bar(served):
    _, ini, _, _ = served
    status, text = on_terminal('verify', ini, '--via-zeo')
    assert status == 0, text
    bar = last_bar(text, 'verify zodb_uri')
    assert bar.group(1) == '100'
    assert int(bar.group(2)) == int(bar.group(3)) > ITEMS


def test_verify_in_a_pipe_writes_lines(served):
    _, ini, _, _ = served
    proc = in_pipe('verify', ini, '--via-zeo')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert '\r' not in proc.stderr
    assert len(lines) >= ITEMS // 256
    assert all(x.startswith('verify zodb_uri: ') for x in lines), lines
    assert re.match(
        r'verify zodb_uri: 256/[\d,]+ records \(\d+%\), [\d,]+ records/s, '
        r'ETA \d+', lines[0],
    ), lines[0]
    assert re.search(r' records \(100%\), .*, done in \d+', lines[-1])
    # The report, on stdout, is the same as ever.
    assert proc.stdout.startswith('verifying zodb_uri (')
    assert ': OK' in proc.stdout


def test_verify_in_a_pipe_says_nothing_for_short_work(served):
    _, ini, _, _ = served
    # The default interval (10 s) is longer than this check.
    proc = in_pipe('verify', ini, interval='')
    assert proc.returncode == 0 and proc.stderr == ''


def test_quiet_says_nothing_on_a_terminal_or_in_a_pipe(served):
    _, ini, _, tmp = served
    status, text = on_terminal('verify', ini, '--via-zeo', '--quiet')
    assert status == 0, text
    assert '%|' not in text and not BARE_CR.search(text)
    assert ': OK' in text
    proc = in_pipe('verify', ini, '-q')
    assert proc.returncode == 0 and proc.stderr == ''
    proc = in_pipe('pack', ini, '--quiet')
    assert proc.returncode == 0 and proc.stderr == ''


def test_copy_on_a_terminal_and_in_a_pipe(served):
    _, _, uri, tmp = served
    dst = tmp / 'copies'
    dst.mkdir(exist_ok=True)
    status, text = on_terminal(
        'copy', uri, f'file://{dst}/tty.fs?blobstorage_dir={dst}/tty.blobs'
    )
    assert status == 0, text
    bar = last_bar(text, 'copy')
    assert bar.group(1) == '100' and bar.group(2) == bar.group(3)
    assert 'B/s]' in text
    proc = in_pipe(
        'copy', uri, f'file://{dst}/pipe.fs?blobstorage_dir={dst}/pipe.b'
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(x.startswith('copy: ') for x in lines)
    assert ', done in ' in lines[-1]


def test_backup_and_restore_show_bytes(served):
    _, ini, _, tmp = served
    repository = tmp / 'backups'
    status, text = on_terminal('backup', ini, '--to', repository)
    assert status == 0, text
    bar = last_bar(text, 'backup')
    assert bar.group(1) == '100' and bar.group(2) == bar.group(3)
    assert 'B/s]' in text
    assert 'full backup ' in text
    output = tmp / 'restored' / 'Data.fs'
    status, text = on_terminal(
        'restore', ini, '--from', repository, '--to', output
    )
    assert status == 0, text
    bar = last_bar(text, 'restore')
    assert bar.group(1) == '100' and bar.group(2) == bar.group(3)
    assert output.stat().st_size > 0
    # In a pipe, a line per poll and one at the end.
    proc = in_pipe('backup', ini, '--to', repository, '--full')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(x.startswith('backup: ') for x in lines), lines
    assert re.search(r'bytes \(100%\), .*, done in ', lines[-1])


def test_pack_shows_the_packed_file_growing(served):
    _, ini, _, _ = served
    status, text = on_terminal('pack', ini)
    assert status == 0, text
    bar = last_bar(text, 'pack zodb_uri')
    assert bar.group(1) == '100' and bar.group(2) == bar.group(3)
    # The report's line, then the bar on a line of its own.
    assert 'packing zodb_uri (' in text and 'done in ' in text


def test_evolve_on_a_terminal_in_a_pipe_and_quiet(zeo_server, tmp_path):
    """A batched step over 3,000 objects, run for real by ``pzeo evolve
    --dry-run`` (so that it can run three times): a bar, lines, nothing."""
    from tests.functional import evolveapp
    from tests.functional.test_evolve import in_transaction, write_ini

    databases = Databases.from_uri(zeo_server.uri(), 10)
    try:
        in_transaction(databases.get(''), lambda root, tm: (
            evolveapp.make_things(
                root, ITEMS, ITEMS, lambda: (tm.commit(), tm.begin())
            )
        ))
    finally:
        databases.close()
    ini = write_ini(tmp_path, zeo_server.uri(), 'many')
    env = dict(child_env(), EVOLVEAPP_BATCH='500')
    status, text = on_terminal('evolve', ini, '--dry-run', env=env)
    assert status == 0, text
    bar = last_bar(text, 'evolve touch_all')
    assert bar.group(1) == '100' and int(bar.group(2)) == ITEMS
    assert ' objects/s]' in text and BARE_CR.search(text)
    assert 'touch_all: done in ' in text

    proc = in_pipe('evolve', ini, '--dry-run', env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == ITEMS // 500 + 1, lines  # a line a batch, + end
    assert lines[0].startswith(
        f'evolve touch_all: 500/{ITEMS:,} objects (17%), '
    )
    assert lines[-1].startswith(
        f'evolve touch_all: {ITEMS:,}/{ITEMS:,} objects (100%)'
    )
    proc = in_pipe('evolve', ini, '--dry-run', '--quiet', env=env)
    assert proc.returncode == 0 and proc.stderr == ''
    assert 'ran and aborted (dry run) 1 steps' in proc.stdout
