"""How addresses and database URIs are shown to people.

Error messages, the health check's JSON, ``pzeo`` and the logs all name
where a database is. One formatter for all of them, so that an IPv6
address always has its brackets and a password in a URI (RelStorage's
``postgres://user:password@host/db``) is never shown.
"""

from __future__ import annotations

import re
from typing import Any

#: ``password=...`` (and the like) in a query string or a DSN
SECRET_PARAM = re.compile(
    r'(?P<key>(?:^|[?&#;\s])(?:password|passwd|pwd)=)[^&#;\s]*', re.I
)


def mask_password(uri: str) -> str:
    """``uri`` with the password of its user info and the value of any
    ``password=`` parameter replaced by ``***``."""
    uri = SECRET_PARAM.sub(r'\g<key>***', uri)
    head, sep, tail = uri.partition('://')
    netloc = tail.split('/', 1)[0].split('?', 1)[0]
    if not sep or '@' not in netloc:
        return uri
    userinfo, host = netloc.rsplit('@', 1)
    if ':' not in userinfo:
        return uri
    user = userinfo.split(':', 1)[0]
    return f'{head}://{user}:***@{host}' + tail[len(netloc):]


def format_address(address: Any) -> str:
    """One address for people: a socket path, ``host:port``,
    ``[v6]:port``, several joined by ``, ``; a URI with its password
    masked."""
    if isinstance(address, (list, tuple)) and address and not (
        len(address) == 2 and isinstance(address[1], int)
    ):
        return ', '.join(format_address(a) for a in address)
    if isinstance(address, tuple):
        host, port = address
        return f'[{host}]:{port}' if ':' in host else f'{host}:{port}'
    return mask_password(str(address))


def address_json(address: Any) -> Any:
    """An address for JSON: :func:`format_address`, a list kept a list."""
    if isinstance(address, list):
        return [format_address(a) for a in address]
    return format_address(address)
