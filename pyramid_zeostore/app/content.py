"""Leaf content of the ready app: an :class:`Item` with attributes."""

from __future__ import annotations

from typing import Any

from persistent import Persistent

#: Attribute values the JSON API stores and returns.
JSON_SCALARS = (str, int, float, bool, type(None))


class Item(Persistent):
    """A persistent leaf whose public attributes are its data.

    ``counter += 1`` style writes on one item are the classic ZODB hot
    spot: two transactions that both change it conflict, and the request
    is retried.
    """

    __name__: str | None = None
    __parent__: Any = None

    def __init__(self, **attributes: Any) -> None:
        for name, value in attributes.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f'<{type(self).__name__} {self.__name__!r}>'


def public_attributes(obj: Any) -> dict[str, Any]:
    """The JSON-able attributes of ``obj`` that the API shows and edits."""
    state = obj.__dict__ if hasattr(obj, '__dict__') else {}
    return {
        name: value
        for name, value in sorted(state.items())
        if is_attribute_name(obj, name) and _jsonable(value)
    }


def is_attribute_name(obj: Any, name: Any) -> bool:
    """May the API set attribute ``name`` on ``obj``?

    Identifiers only, none starting with ``_``, and none the class
    defines (methods, ``data`` and the like stay out of reach).
    """
    return (
        isinstance(name, str)
        and name.isidentifier()
        and not name.startswith('_')
        and not hasattr(type(obj), name)
        and name not in _RESERVED
    )


_RESERVED = frozenset({'data'})


def _jsonable(value: Any) -> bool:
    if isinstance(value, JSON_SCALARS):
        return True
    if isinstance(value, list):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and _jsonable(v) for k, v in value.items()
        )
    return False
