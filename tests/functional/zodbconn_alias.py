"""pyramid_zodbconn's public names, on pyramid_zeostore: a thin alias.

``test_zodbconn_suite.py`` runs pyramid_zodbconn's own tests with this
module standing in for ``pyramid_zodbconn`` (``sys.modules``), to list
which of its behaviours this package keeps. Every name is the package's
own; ``includeme`` is the one-line move.
"""

from __future__ import annotations

from pyramid_zeostore import (
    ZODBConnectionClosed,
    ZODBConnectionOpened,
    ZODBConnectionWillClose,
    db_from_uri,
    get_connection,
)
from pyramid_zeostore.events import ConnectionEvent
from pyramid_zeostore.metrics import TransferLog

__all__ = [
    'ConnectionEvent', 'TransferLog', 'ZODBConnectionClosed',
    'ZODBConnectionOpened', 'ZODBConnectionWillClose', 'db_from_uri',
    'get_connection', 'includeme',
]


def includeme(config):
    config.include('pyramid_zeostore')
