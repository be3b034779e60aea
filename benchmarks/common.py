"""What the benchmark scripts share: a runzeo zeo.conf, the ini logging
section, the user writes authenticate as, a free port on the loopback,
waiting for a server to come up."""

from __future__ import annotations

import base64
import socket
import time
from typing import Any, Callable

#: The user the writes of the benchmarks authenticate as (HTTP Basic,
#: JSON bodies: what the ready app asks of API clients; the peer ignores
#: it). :func:`seed.seed` and ``contention.py`` add it to the database.
BENCH_USER = 'bench'
BENCH_PASSWORD = 'bench-password'
BASIC = 'Basic ' + base64.b64encode(
    f'{BENCH_USER}:{BENCH_PASSWORD}'.encode()
).decode()
#: Signs the ready app's sessions (it wants one once users exist).
SECRET = 'benchmark-session-secret-0123456789abcdef'

ZEO_CONF = """\
<zeo>
  address {var}/zeo.sock
  read-only false
  invalidation-queue-size 100
  pid-filename {var}/zeo.pid
</zeo>
<filestorage 1>
  path {var}/Data.fs
</filestorage>
<eventlog>
  level WARNING
  <logfile>
    path {var}/zeo.log
  </logfile>
</eventlog>
"""
LOGGING = """
[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = WARN
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
[formatter_generic]
format = %(asctime)s %(levelname)s [%(name)s] %(message)s
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; the seconds it took. Bounded."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise RuntimeError(f'{what} did not come up in {timeout:g}s')
        time.sleep(0.01)
    return time.monotonic() - t0


def connects(address: Any, family: int = socket.AF_INET) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(address)
        except OSError:
            return False
    return True
