"""Leaf content of the ready app: an :class:`Item` with attributes."""

from __future__ import annotations

import math
from typing import Any

from persistent import Persistent

#: Attribute values the JSON API stores and returns.
JSON_SCALARS = (str, int, float, bool, type(None))
#: How deep lists and objects may nest in an attribute value.
MAX_DEPTH = 32


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


class Value(Persistent):
    """A large attribute value in a record of its own.

    ZODB writes an object's whole state on every change: an item holding
    1 MB beside a counter would add 1 MB to the database per increment.
    Values over ``zeostore.large_value`` bytes of JSON are kept in a
    :class:`Value`, so changing the small ones rewrites only the item's
    small record (and a large value only when it changes).
    """

    def __init__(self, value: Any) -> None:
        self.value = value


def unbox(value: Any) -> Any:
    """The attribute value itself, out of its :class:`Value` if boxed."""
    return value.value if isinstance(value, Value) else value


def store(obj: Any, name: str, value: Any, large: int, size: int) -> None:
    """Set attribute ``name``, boxing the value if its JSON (``size``
    bytes) is over ``large`` bytes."""
    setattr(obj, name, Value(value) if size > large else value)


def public_attributes(obj: Any) -> dict[str, Any]:
    """The JSON-able attributes of ``obj`` that the API shows and edits."""
    state = obj.__dict__ if hasattr(obj, '__dict__') else {}
    found = {}
    for name, value in sorted(state.items()):
        value = unbox(value)
        if is_attribute_name(obj, name) and _jsonable(value):
            found[name] = value
    return found


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
    return value_problem(value) is None


def value_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot be an attribute the API stores and shows, or
    None: only JSON values, finite numbers, text that is Unicode (no lone
    surrogates), nested at most :data:`MAX_DEPTH` deep."""
    if isinstance(value, str):
        try:
            value.encode('utf-8')
        except UnicodeEncodeError:
            return 'text must not hold lone surrogates'
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else 'numbers must be finite'
    if isinstance(value, JSON_SCALARS):
        return None
    if depth >= MAX_DEPTH:
        return f'values may nest at most {MAX_DEPTH} levels deep'
    if isinstance(value, list):
        items = value
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return 'object keys must be text'
        items = [*value, *value.values()]
    else:
        return f'{type(value).__name__} is not a JSON value'
    for item in items:
        problem = value_problem(item, depth + 1)
        if problem is not None:
            return problem
    return None
