"""Leaf content of the ready app: an :class:`Item` with attributes."""

from __future__ import annotations

import inspect
import json
import math
import reprlib
from collections.abc import Sequence
from typing import Any

from persistent import Persistent

from ..folder import Folder

#: Attribute values the JSON API stores and returns.
JSON_SCALARS = (str, int, float, bool, type(None))
#: How deep lists and objects may nest in an attribute value.
MAX_DEPTH = 32
#: Whole numbers must be below this: Python reads and writes no more
#: digits (``sys.get_int_max_str_digits()``'s default), so JSON could not
#: carry them.
INT_LIMIT = 10 ** 4300
#: The longest text shown of a value JSON cannot carry (its ``repr``).
MAX_REPR = 1000


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
    """May the API and the object browser set attribute ``name`` on
    ``obj``? See :func:`attribute_problem`."""
    return attribute_problem(obj, name) is None


def attribute_problem(obj: Any, name: Any) -> str | None:
    """Why attribute ``name`` of ``obj`` may not be set, or None: the one
    rule of the JSON API and the object browser.

    Identifiers only, none starting with ``_`` (ZODB's and the classes'
    own), none the class defines as a method, property or other
    descriptor (setting ``keys`` would hide ``Folder.keys``; ``order``
    would run its setter), and not ``data`` on a folder (repoze.folder's
    and Substance D's folders keep their children there). A plain class
    default (``title = ''``) may be shadowed, as in any ZODB class.
    """
    if not isinstance(name, str) or not name.isidentifier() or (
            name.startswith('_')):
        return (f'{name!r} is not an attribute you can set: expected a '
                'name of letters, digits and _, not starting with _ or a '
                'digit')
    cls = type(obj)
    member = inspect.getattr_static(cls, name, _NOTHING)
    if member is not _NOTHING and (
            callable(member) or hasattr(type(member), '__get__')):
        kind = ('property' if isinstance(member, property)
                else 'method' if callable(member) else 'attribute')
        return (f'{name!r} is not an attribute you can set: the name is '
                f'taken by {cls.__name__} (its {kind} {name})')
    if isinstance(obj, Folder) and name in FOLDER_RESERVED:
        return (f'{name!r} is not an attribute you can set: the name is '
                f'taken by {cls.__name__} (folders keep their children '
                'there in repoze.folder and Substance D)')
    return None


_NOTHING: Any = object()
#: Names no folder may hold as attributes, though its class lacks them.
FOLDER_RESERVED = frozenset({'data'})


def loads(text: str | bytes) -> Any:
    """``text`` as JSON, as the API and the object browser read values:
    finite numbers only (no ``NaN`` or ``Infinity``, which Python's JSON
    takes and no client could read back), at most as many digits as
    Python reads. Raise ``ValueError`` saying what is wrong, also for
    nesting too deep for Python's parser."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(
            f'values may nest at most {MAX_DEPTH} levels deep') from None


def _no_constant(name: str) -> Any:
    raise ValueError(f'{name} is not a JSON number')


def json_size(value: Any) -> int:
    """The bytes of ``value``'s JSON (a value :func:`value_problem`
    passed), which ``zeostore.max_value`` bounds."""
    return len(json.dumps(value).encode('utf-8'))


def is_value(obj: Any) -> bool:
    """Is ``obj`` a plain value (a number, text, list, dict, None, an
    instance of a class that is not persistent), stored in the record of
    the folder or object that holds it, not an object of its own? Such
    a value can be shown and replaced, not given attributes."""
    return not isinstance(obj, Persistent)


def holder(root: Any, names: Sequence[str]) -> Any:
    """The object holding the one at ``names`` (the names traversed from
    ``root``): a plain value knows neither its name nor its holder."""
    obj = root
    for name in names[:-1]:
        obj = obj[name]
    return obj


def shown_value(value: Any) -> dict[str, Any]:
    """A plain value as the API shows it: ``{'value': value}`` if JSON can
    carry it, else ``{'repr': text}``, at most :data:`MAX_REPR`
    characters of its ``repr`` (one that runs no application code)."""
    if value_problem(value) is None:
        return {'value': value}
    text = _Repr().repr(value)
    if len(text) > MAX_REPR:
        text = text[:MAX_REPR - 1] + '…'
    return {'repr': text}


class _Repr(reprlib.Repr):
    """reprlib's bounded ``repr``, running no code of the application's
    classes: their instances show as ``<module.Class>``."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = self.maxlong = MAX_REPR

    def repr1(self, x: Any, level: int) -> str:
        cls = type(x)
        if cls.__module__ != 'builtins':
            return f'<{cls.__module__}.{cls.__qualname__}>'
        return super().repr1(x, level)

    def repr_int(self, x: int, level: int) -> str:
        if -INT_LIMIT < x < INT_LIMIT:
            return super().repr_int(x, level)
        return f'<int of about {int(x.bit_length() * 0.30103)} digits>'


def _jsonable(value: Any) -> bool:
    return value_problem(value) is None


def value_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot be an attribute the API stores and shows, or
    None: only JSON values, finite numbers, text that is Unicode (no lone
    surrogates), whole numbers below :data:`INT_LIMIT`, nested at most
    :data:`MAX_DEPTH` deep."""
    if isinstance(value, str):
        try:
            value.encode('utf-8')
        except UnicodeEncodeError:
            return 'text must not hold lone surrogates'
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else 'numbers must be finite'
    if isinstance(value, int) and not -INT_LIMIT < value < INT_LIMIT:
        return 'whole numbers may have at most 4300 digits'
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
