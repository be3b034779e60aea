"""Fixtures shared by the unit and functional suites."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from pyramid_zeostore import zeoserver

ZEO_CONF = """\
%define VAR {var}
<zeo>
  address $VAR/zeo.sock
  read-only false
  invalidation-queue-size 100
  pid-filename $VAR/zeo.pid
</zeo>
<blobstorage 1>
  <filestorage>
    path $VAR/Data.fs
  </filestorage>
  blob-dir $VAR/blobs
</blobstorage>
<eventlog>
  level INFO
  <logfile>
    path $VAR/zeo.log
  </logfile>
</eventlog>
"""


def write_zeo_conf(directory) -> str:
    """Write a recipe-shaped zeo.conf whose files live in ``directory``."""
    var = str(directory)
    os.makedirs(var, exist_ok=True)
    path = os.path.join(var, 'zeo.conf')
    with open(path, 'w') as f:
        f.write(ZEO_CONF.format(var=var))
    return path


class ZEOProcess:
    """A real ``runzeo`` on a Unix socket in a temp dir, stopped by pid."""

    def __init__(self, directory) -> None:
        self.dir = str(directory)
        self.conf_path = write_zeo_conf(self.dir)
        self.sock = os.path.join(self.dir, 'zeo.sock')
        self.proc: subprocess.Popen | None = None

    def uri(self, **params) -> str:
        query = '&'.join(f'{k}={v}' for k, v in params.items())
        return f'zeo://{self.sock}' + (f'?{query}' if query else '')

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            zeoserver.runzeo_command(self.conf_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not zeoserver.wait_listening(self.sock, timeout):
            self.stop()
            raise RuntimeError('runzeo did not start:\n' + self.log())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, 'zeo.log')) as f:
                return f.read()[-4000:]
        except OSError:
            return '(no log)'


@pytest.fixture
def zeo_server(tmp_path):
    """A running ZEO server (``runzeo`` subprocess) for one test."""
    server = ZEOProcess(tmp_path / 'zeo')
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pyramid_config():
    """A Pyramid configurator in the pyramid_retry test style."""
    from pyramid import testing

    config = testing.setUp(autocommit=False)
    yield config
    testing.tearDown()
