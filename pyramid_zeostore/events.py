"""Every event pyramid_zeostore sends (``registry.notify(event)``).

Folder events (an object added to or removed from a folder), connection
events (a request's ZODB connection opened or closed) and the metrics of
a finished request. Subscribe with ``config.add_subscriber(handler,
IObjectAdded)`` and so on; the interfaces live in
:mod:`pyramid_zeostore.interfaces`. Folder events also reach subscribers
registered for the event and the object's type, ``[IObjectAdded,
IMyContent]`` (called ``handler(event, obj)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from .interfaces import (
    IConnectionEvent,
    IObjectAdded,
    IObjectEvent,
    IObjectRemoved,
    IObjectWillBeAdded,
    IObjectWillBeRemoved,
    IZODBRequestMetrics,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyramid.request import Request
    from ZODB.Connection import Connection


@implementer(IObjectEvent)
class ObjectEvent:
    """Base of the folder events: ``object`` in folder ``parent`` as ``name``.

    ``top`` is the object the folder method was called for (``object``
    itself unless this event is for one of its descendants). A move or
    rename fills ``old_parent``/``old_name``/``new_parent``/``new_name``
    (where ``top`` comes from and goes to) and ``moving``: the *other*
    folder, as in Substance D (the removal events carry the folder ``top``
    goes to, the add events the one it comes from; a rename, its own
    folder); it is None when nothing moves, so ``event.moving is None``
    tells a delete from the first half of a move. Given ``old_parent``
    and no ``moving``, ``moving`` is ``new_parent`` for the removal events
    and ``old_parent`` for the others. A copy sets ``copied_from`` (also
    ``duplicating``, Substance D's name) to the original of ``top``.

    The folder sends each event to the subscribers of ``(event,)``,
    ``(event, object)`` and ``(event, object, parent)``: see
    :class:`~pyramid_zeostore.folder.Folder`.
    """

    #: Which folder ``moving`` defaults to when ``old_parent`` is given.
    _moving_default = 'old_parent'

    def __init__(
        self,
        object: Any,
        parent: Any,
        name: str,
        *,
        top: Any = None,
        moving: Any = None,
        old_parent: Any = None,
        old_name: str | None = None,
        new_parent: Any = None,
        new_name: str | None = None,
        copied_from: Any = None,
    ) -> None:
        self.object = object
        self.parent = parent
        self.name = name
        self.top = object if top is None else top
        self.old_parent = old_parent
        self.old_name = old_name
        self.new_parent = new_parent
        self.new_name = new_name
        if moving is None and old_parent is not None:
            moving = getattr(self, self._moving_default)
        self.moving = moving
        self.copied_from = copied_from

    @property
    def duplicating(self) -> Any:
        """Substance D's name for ``copied_from``."""
        return self.copied_from

    def __repr__(self) -> str:
        return (
            f'<{type(self).__name__} {self.name!r} in {self.parent!r}'
            f'{" (moving)" if self.moving is not None else ""}>'
        )


@implementer(IObjectWillBeAdded)
class ObjectWillBeAdded(ObjectEvent):
    """Sent before ``object`` is added; ``top`` has no ``__parent__`` yet.

    A subscriber that raises stops the add before anything changed.
    ``moving``: the folder ``top`` comes from, or None.
    """


@implementer(IObjectAdded)
class ObjectAdded(ObjectEvent):
    """Sent after ``object`` was added (``top.__parent__`` is the folder).

    ``moving``: the folder ``top`` comes from, or None.
    """


@implementer(IObjectWillBeRemoved)
class ObjectWillBeRemoved(ObjectEvent):
    """Sent before ``object`` is removed, while its path still resolves.

    A subscriber that raises stops the removal before anything changed.
    ``moving``: the folder ``top`` goes to, or None (a delete).
    """

    _moving_default = 'new_parent'


@implementer(IObjectRemoved)
class ObjectRemoved(ObjectEvent):
    """Sent after ``object`` was removed (``top.__parent__`` is None).

    ``moving``: the folder ``top`` goes to, or None (a delete).
    """

    _moving_default = 'new_parent'


# -- connection events --------------------------------------------------------


@implementer(IConnectionEvent)
class ConnectionEvent:
    """Base of the connection events: ``conn``, ``request`` and ``kept``.

    The three events bracket a request's use of its connection, as in
    pyramid_zodbconn. ``kept`` is False for a connection taken from the
    pool and returned to it; True for a fast read's, which its thread
    keeps open between requests (:mod:`pyramid_zeostore.tweens`): then
    Opened means the request began to use it and Closed that it is done
    with it, and ``conn.opened`` stays set.
    """

    def __init__(
        self, conn: Connection, request: Request, kept: bool = False
    ) -> None:
        self.conn = conn
        self.request = request
        self.kept = kept


class ZODBConnectionOpened(ConnectionEvent):
    """Sent when a request's ZODB connection has been opened (or, with
    ``kept``, taken from its thread)."""


class ZODBConnectionWillClose(ConnectionEvent):
    """Sent before a request's ZODB connection is aborted and closed (or,
    with ``kept``, handed back to its thread, already aborted)."""


class ZODBConnectionClosed(ConnectionEvent):
    """Sent after a request's ZODB connection went back to the pool (or,
    with ``kept``, to its thread, still open)."""


#: The connection events, in the order a request sends them.
CONNECTION_EVENTS = (
    ZODBConnectionOpened,
    ZODBConnectionWillClose,
    ZODBConnectionClosed,
)


# -- metrics ------------------------------------------------------------------


@implementer(IZODBRequestMetrics)
class ZODBRequestMetrics:
    """Sent when a request that used ZODB is done, with its metrics (a
    :class:`~pyramid_zeostore.metrics.RequestMetrics`)."""

    def __init__(self, request: Any, metrics: Any) -> None:
        self.request = request
        self.metrics = metrics
