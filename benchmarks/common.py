"""What the benchmark scripts share: a runzeo zeo.conf, the ini logging
section, a free port on the loopback."""

from __future__ import annotations

import socket

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
