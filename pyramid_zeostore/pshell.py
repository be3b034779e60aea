"""``[pshell] setup = pyramid_zeostore.pshell.setup``: the live database.

Gives ``root`` (the app root), ``zodb_root``, ``conn``, ``db``, ``tm``,
``commit()`` and ``abort()``. A transaction is begun for the session and
aborted at exit, so only what you ``commit()`` is saved. ``commit()``
begins a fresh transaction afterwards, which also brings in what other
processes committed meanwhile; so does ``abort()``.
"""

from __future__ import annotations

from typing import Any, Iterator

from . import compat
from .connection import get_connection, get_databases


def setup(env: dict[str, Any]) -> Iterator[None]:
    """Fill the pshell environment; a generator, so pshell closes it."""
    request = env['request']
    registry = env['registry']
    tm = request.tm
    tm.begin()
    try:
        # Let the app's own root factory (and the bootstrap) run, now
        # within the session's transaction.
        env['root'] = request.root = env['root_factory'](request)
        conn = get_connection(request)
        databases = get_databases(registry)

        def commit() -> None:
            """Commit what you changed, then begin a fresh transaction."""
            tm.commit()
            tm.begin()

        def abort() -> None:
            """Drop what you changed, then begin a fresh transaction."""
            tm.abort()
            tm.begin()

        env.update(
            zodb_root=conn.root(),
            conn=conn,
            db=databases.get(''),
            tm=tm,
            commit=commit,
            abort=abort,
        )
        yield
    finally:
        # Whatever was not committed is dropped, also after a failed
        # commit() or a tm.commit() that left no transaction behind.
        if compat.current_transaction(tm) is not None:
            tm.abort()
