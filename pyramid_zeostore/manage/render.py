"""A safe, readable view of any persistent object's stored attributes.

The object browser shows what an object holds without running its code:
the state comes from ``__getstate__`` (what ZODB pickles), never from
properties, ``__repr__`` or ``__str__`` of the application's classes.
Plain values (str, bytes, numbers, dates, containers of them) are shown
as text of their own making, cut to a length; persistent objects as
links by oid; anything else by its class name only.
"""

from __future__ import annotations

import datetime
import decimal
from dataclasses import dataclass, field
from typing import Any

from persistent import Persistent
from ZODB.utils import u64

#: The longest text shown for one value; the rest is cut.
MAX_TEXT = 2000
#: How many members of a list, tuple, set or dict are shown.
MAX_MEMBERS = 50
#: How deep containers are followed.
MAX_DEPTH = 6
#: Types whose value may be edited in the object view.
EDITABLE = (str, int, float, bool, datetime.date, list, dict)


@dataclass
class Shown:
    """One value as the page shows it: ``kind`` is 'text' (``text``),
    'link' (a persistent object: ``oid``, ``text`` its class), or
    'members' (``members``: (key or None, Shown) pairs)."""

    kind: str
    type_name: str
    text: str = ''
    oid: str | None = None
    members: list[tuple[str | None, Shown]] = field(default_factory=list)
    more: int = 0  # members or characters left out


def type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == 'builtins' else (
        f'{module}.{cls.__qualname__}')


def oid_hex(obj: Any) -> str | None:
    """The object's oid as 16 hex digits, or None if it has none yet."""
    oid = getattr(obj, '_p_oid', None)
    return None if oid is None else f'{u64(oid):016x}'


def _cut(text: str) -> tuple[str, int]:
    if len(text) > MAX_TEXT:
        return text[:MAX_TEXT], len(text) - MAX_TEXT
    return text, 0


def show(value: Any, depth: int = 0) -> Shown:
    """``value`` as :class:`Shown`, without calling its class's code."""
    name = type_name(value)
    if isinstance(value, Persistent):
        return Shown('link', name, text=name, oid=oid_hex(value))
    if value is None or isinstance(value, (bool, int, float, complex,
                                           decimal.Decimal)):
        text, more = _cut(repr(value) if not isinstance(value, bool)
                          else str(value))
        return Shown('text', name, text=text, more=more)
    if isinstance(value, str):
        text, more = _cut(value)
        return Shown('text', name, text=text, more=more)
    if isinstance(value, (bytes, bytearray)):
        # Three characters a byte ('ff '): as many bytes as fit.
        head = bytes(value[:MAX_TEXT // 3])
        return Shown('text', name, text=head.hex(' '),
                     more=len(value) - len(head))
    if isinstance(value, (datetime.date, datetime.time,
                          datetime.timedelta)):
        return Shown('text', name, text=value.isoformat()
                     if hasattr(value, 'isoformat') else str(value))
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        if depth >= MAX_DEPTH:
            return Shown('text', name, text='…', more=len(value))
        if isinstance(value, dict):
            pairs = list(value.items())
        else:
            pairs = [(None, v) for v in value]
        members = []
        for key, member in pairs[:MAX_MEMBERS]:
            label = None if key is None else (
                key if isinstance(key, str) else show(key, MAX_DEPTH).text)
            members.append((label, show(member, depth + 1)))
        return Shown('members', name, members=members,
                     more=max(0, len(pairs) - MAX_MEMBERS))
    # Anything else: its class alone (its repr is its class's code).
    return Shown('text', name, text=f'<{name}>')


def stored_state(obj: Any) -> dict[str, Any]:
    """What ZODB stores for ``obj``: its ``__getstate__`` as a dict
    (``__dict__``, and slots where the class has them)."""
    state = obj.__getstate__()
    if isinstance(state, tuple) and len(state) == 2:
        merged: dict[str, Any] = {}
        for part in state:
            if isinstance(part, dict):
                merged.update(part)
        return merged
    if isinstance(state, dict):
        return dict(state)
    return {'(state)': state}


def attributes(obj: Any) -> list[tuple[str, Shown, bool]]:
    """(name, shown value, editable) for each stored attribute, by name;
    the folder machinery (``_tree``, ``_num``, ``__parent__``...) too."""
    found = []
    for name, value in sorted(stored_state(obj).items(),
                              key=lambda kv: str(kv[0])):
        editable = (
            isinstance(name, str) and not name.startswith('_')
            and type(value) in EDITABLE
        )
        found.append((str(name), show(value), editable))
    return found
