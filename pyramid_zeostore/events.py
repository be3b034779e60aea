"""Events sent through the Pyramid registry (``registry.notify(event)``).

Subscribe with ``config.add_subscriber(handler, IObjectAdded)`` and so on;
the interfaces live in :mod:`pyramid_zeostore.interfaces`.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from .interfaces import (
    IObjectAdded,
    IObjectEvent,
    IObjectRemoved,
    IObjectWillBeAdded,
    IObjectWillBeRemoved,
)


@implementer(IObjectEvent)
class ObjectEvent:
    """Base of the folder events: ``object`` in folder ``parent`` as ``name``.

    ``top`` is the object the folder method was called for (``object``
    itself unless this event is for one of its descendants). A move or
    rename fills ``old_parent``/``old_name``/``new_parent``/``new_name``
    (where ``top`` comes from and goes to) and sets ``moving``; a copy sets
    ``copied_from`` to the original of ``top``.
    """

    def __init__(
        self,
        object: Any,
        parent: Any,
        name: str,
        *,
        top: Any = None,
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
        self.moving = old_parent is not None
        self.copied_from = copied_from

    def __repr__(self) -> str:
        return (
            f'<{type(self).__name__} {self.name!r} in {self.parent!r}'
            f'{" (moving)" if self.moving else ""}>'
        )


@implementer(IObjectWillBeAdded)
class ObjectWillBeAdded(ObjectEvent):
    """Sent before ``object`` is added; ``top`` has no ``__parent__`` yet.

    A subscriber that raises stops the add before anything changed.
    """


@implementer(IObjectAdded)
class ObjectAdded(ObjectEvent):
    """Sent after ``object`` was added (``top.__parent__`` is the folder)."""


@implementer(IObjectWillBeRemoved)
class ObjectWillBeRemoved(ObjectEvent):
    """Sent before ``object`` is removed, while its path still resolves.

    A subscriber that raises stops the removal before anything changed.
    """


@implementer(IObjectRemoved)
class ObjectRemoved(ObjectEvent):
    """Sent after ``object`` was removed (``top.__parent__`` is None)."""
