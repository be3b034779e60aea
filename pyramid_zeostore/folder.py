"""A persistent, BTree-backed folder: the content container of the app.

Modelled on Substance D's folder: children in a :class:`FolderTree` keyed
by name and their number in a ``BTrees.Length``, both resolving write
conflicts, so that concurrent adds of distinct names rarely conflict,
adding never rewrites the folder's own record and ``len()`` is O(1). A
folder is sorted by name unless given an order (:meth:`Folder.set_order`,
kept in a :class:`FolderOrder`). The folder knows nothing of requests,
storages or views: the one outside thing it touches is the Pyramid
registry it sends its object events through (the order they come in and
how they are dispatched is told in :class:`Folder`).
"""

from __future__ import annotations

import io
import pickle
import random
import shutil
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from BTrees.Length import Length
from BTrees.LOBTree import LOBTree
from BTrees.OLBTree import OLBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from pyramid.location import inside
from pyramid.threadlocal import get_current_registry
from ZODB.blob import Blob
from zope.interface import implementer

from .events import (
    ObjectAdded,
    ObjectEvent,
    ObjectRemoved,
    ObjectWillBeAdded,
    ObjectWillBeRemoved,
)
from .exceptions import FolderKeyError, InvalidName
from .interfaces import IFolder

__all__ = [
    'Folder', 'FolderOrder', 'FolderTree', 'InvalidName', 'MAX_NAME_LENGTH',
]

#: The longest name a folder accepts, in characters.
MAX_NAME_LENGTH = 255

#: Characters that show as a blank, which a name may not hold besides the
#: format characters (see :func:`invisible`): the combining grapheme
#: joiner, Hangul fillers, Khmer inherent vowels.
FILLERS = frozenset('\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0')


def invisible(char: str) -> bool:
    """Is ``char`` not seen, so that no name may hold it: a format
    character (Unicode category Cf: bidirectional controls such as U+202E,
    which shows the rest of a name reversed, zero-width characters, the
    byte order mark, the soft hyphen, tags) or one of :data:`FILLERS`?"""
    return char in FILLERS or unicodedata.category(char) == 'Cf'


_MISSING: Any = object()


def _show(name: Any) -> str:
    """``name`` in double quotes, control, invisible, surrogate and
    whitespace characters (but the plain space) escaped; ``repr()`` of
    what is not a ``str``."""
    if not isinstance(name, str):
        return repr(name)
    shown = ''.join(
        c.encode('unicode_escape').decode('ascii')
        if unicodedata.category(c) in ('Cc', 'Cs') or invisible(c)
        or (c.isspace() and c != ' ')
        else c
        for c in name
    )
    return f'"{shown}"'


def _shown(names: list[Any], most: int = 5) -> str:
    """The first ``most`` of ``names``, shown, and how many more."""
    text = ', '.join(_show(n) for n in names[:most])
    if len(names) > most:
        text += f' and {len(names) - most} more'
    return text


def _locate(obj: Any, parent: Any, name: str | None) -> None:
    """Set ``obj.__parent__`` and ``obj.__name__`` if ``obj`` can carry
    them: a number, a string, a tuple or a class is stored as it is."""
    try:
        obj.__parent__ = parent
        obj.__name__ = name
    except (AttributeError, TypeError):
        pass


class FolderTree(OOBTree):
    """The BTree of a folder's children: interior nodes of at most 32
    children instead of ``OOBTree``'s 250; buckets keep 30.

    Loading an interior node makes a ghost of each child it names, so a
    cold lookup in a huge folder is dominated by its two widest nodes;
    narrower nodes make it load one or two more, much smaller, ones, and
    a bucket split rewrites a smaller parent, so concurrent adders
    conflict less (measured in ``benchmarks/README.md``, ``scale.py``).
    """

    max_internal_size = 32


#: Positions are signed 64-bit integers (``LOBTree`` keys).
_LOWEST, _HIGHEST = -(2 ** 63), 2 ** 63 - 1


class FolderOrder(Persistent):
    """The order of an ordered folder's names, a record of its own.

    Two BTrees: ``LOBTree`` position -> name (iterated for the order) and
    ``OLBTree`` name -> position (to find, drop or move one name). A
    position is a 64-bit integer; names are spread :attr:`GAP` apart.
    Why not a tuple of names, as repoze.folder and Substance D keep:
    every add would rewrite the whole tuple (a 100,000-name folder: 2 MB
    per add) and any two adds would conflict. Here appending a name
    writes one bucket of each tree (and the path to it when a bucket
    splits); it takes the last position plus a random step of GAP/2 to
    GAP, so two transactions appending at once pick distinct positions
    and ZODB merges their inserts instead of raising a conflict.
    Dropping a name writes one bucket of each tree. Moving ``k`` names
    in front of another (:meth:`move_before`) gives them ``k`` evenly
    spaced positions in the gap before it; only when that gap is used up
    (after some 30 halvings at one spot) are all positions renumbered,
    O(n), once. Iterating loads the position tree's buckets, some n/30
    records, and gives the names in order; paging by position (keyset)
    is O(log n).
    """

    #: The distance between two neighbouring names when renumbered.
    GAP = 2 ** 32

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names = LOBTree()
        self._positions = OLBTree()
        self.renumber(names)

    def __iter__(self) -> Iterator[str]:
        """Iterate over the names in order."""
        return iter(self._names.values())

    def names(self, low: int | None = None, high: int | None = None,
              excludemin: bool = False, excludemax: bool = False) -> Any:
        """The names at positions ``low`` to ``high``, a lazy BTree
        sequence; all of them by default."""
        return self._names.values(low, high, excludemin, excludemax)

    def position(self, name: str) -> int:
        """The position of ``name``; raise ``KeyError``."""
        return self._positions[name]

    def append(self, name: str) -> int:
        """Put ``name`` last; return its position."""
        names = self._names
        if not names:
            position = 0
        else:
            position = names.maxKey() + random.randrange(
                self.GAP // 2, self.GAP + 1)
            if position > _HIGHEST:
                self.renumber(list(names.values()))
                position = names.maxKey() + self.GAP
        self._put(name, position)
        return position

    def insert(self, name: str, position: int | None = None) -> None:
        """Put ``name`` at ``position`` (a free one, as :meth:`discard`
        returned it), or last when None."""
        if position is None:
            self.append(name)
        else:
            self._put(name, position)

    def discard(self, name: str) -> int:
        """Drop ``name``; return the position it had."""
        position = self._positions.pop(name)
        del self._names[position]
        return position

    def move_before(self, moved: list[str], before: str | None) -> None:
        """Move the names ``moved`` (distinct, all in the order), in that
        order, in front of ``before``, or last when it is None. When
        ``before`` is one of them, they go where it was: in front of the
        first name after it that does not move."""
        anchor = None if before is None else self._positions[before]
        for name in moved:
            self.discard(name)
        names = self._names
        if anchor is not None:
            try:
                anchor = names.minKey(anchor)
            except ValueError:  # nothing after it stays: move to the end
                anchor = None
        if anchor is None:
            for name in moved:
                self.append(name)
            return
        try:
            low = names.maxKey(anchor - 1)
        except ValueError:  # nothing in front of it
            low = anchor - self.GAP * (len(moved) + 1)
        step = (anchor - low) // (len(moved) + 1)
        if step == 0 or low < _LOWEST:
            order = list(names.values())
            at = order.index(names[anchor])
            order[at:at] = moved
            self.renumber(order)
            return
        for i, name in enumerate(moved, 1):
            self._put(name, low + i * step)

    def renumber(self, names: Iterable[str]) -> None:
        """Make the order ``names`` (distinct), spread :attr:`GAP`
        apart from 0. Rewrites both trees: O(n)."""
        names = list(names)
        positions = range(0, len(names) * self.GAP, self.GAP)
        self._names.clear()
        self._positions.clear()
        self._names.update(list(zip(positions, names, strict=True)))
        self._positions.update(list(zip(names, positions, strict=True)))

    def _put(self, name: str, position: int) -> None:
        self._names[position] = name
        self._positions[name] = position


class _Children:
    """A lazy sequence of an ordered folder's children: what ``make``
    returns for each name of ``names`` (a lazy BTree sequence)."""

    __slots__ = ('_names', '_make')

    def __init__(self, names: Any, make: Callable[[str], Any]) -> None:
        self._names = names
        self._make = make

    def __iter__(self) -> Iterator[Any]:
        return map(self._make, self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._make(name) for name in self._names[index]]
        return self._make(self._names[index])


@implementer(IFolder)
class Folder(Persistent):
    """A persistent mapping of names (``str``) to objects, sorted by name
    unless given an order (:meth:`set_order`).

    ``data`` is an optional mapping of initial children, added without
    events. Children get ``__parent__`` and ``__name__`` when added and
    lose them when removed; values that cannot carry attributes (numbers,
    strings, tuples) are stored as they are. A folder is always true,
    even when empty.

    Events (classes in :mod:`pyramid_zeostore.events`), sent through
    ``registry`` (the current registry unless one is passed): adding
    ``obj`` sends ``ObjectWillBeAdded`` for ``obj`` and then for each of
    its descendants in pre-order (parents before children), adds it, then
    sends ``ObjectAdded`` in the same order; removing ``obj`` sends
    ``ObjectWillBeRemoved`` for each descendant in post-order (children
    before parents) and last for ``obj`` itself, removes it, then sends
    ``ObjectRemoved`` in the same order. Descendants are the contents of
    children that provide ``IFolder``, recursively, each folder's in its
    own order; their events carry their own ``parent`` and ``name``, and
    ``top`` is ``obj``. A move or rename is a remove then an add, whose
    events carry ``moving`` (the destination folder in the remove events,
    the source folder in the add events: Substance D's convention); a
    copy is an add of the copy (``copied_from`` is the original, moving
    is None).

    Where that differs from repoze.folder and Substance D: they send one
    event, for ``obj`` only, and leave its descendants to the subscriber
    (Substance D's object map walks them; ``ObjectRemoved.removed_oids``
    lists them). Here every object of the subtree gets its own events,
    so that a subscriber for a content type hears of that content however
    deep it was added or removed; a subscriber that wants one event per
    call checks ``event.object is event.top``. Sending events loads the
    whole subtree; ``send_events=False`` (or a registry without
    subscribers) skips that.

    Each event is dispatched three times, so that each shape of
    subscriber is called once: ``(event,)`` for
    ``config.add_subscriber(h, IObjectAdded)`` (``h(event)``), ``(event,
    object)`` for ``[IObjectAdded, IMyContent]`` (``h(event, obj)``) and
    ``(event, object, parent)`` for Substance D's ``[IObjectAdded,
    IMyContent, IMyFolder]``. A registry with nothing subscribed
    (``has_listeners`` false) gets no event at all, and none is made.
    """

    __name__: str | None = None
    __parent__: Any = None
    #: The :class:`FolderOrder` of an ordered folder; None: sorted by name.
    _order: FolderOrder | None = None
    #: ``add_next``'s counters: prefix -> ``Length``; made on first use.
    _autonames: OOBTree | None = None

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = FolderTree()
        self._num_objects = Length(0)
        if data:
            for name, obj in data.items():
                self.add(name, obj, send_events=False)

    # -- reading -----------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        """Return the object named ``name``; raise ``FolderKeyError``."""
        obj = self.get(name, _MISSING)
        if obj is _MISSING:
            raise FolderKeyError(name)
        return obj

    def get(self, name: str, default: Any = None) -> Any:
        """Return the object named ``name`` (or its NFC form: ``é`` and
        ``e`` + U+0301 are one name), or ``default``."""
        key = self._key(name)
        return default if key is None else self._data[key]

    def __contains__(self, name: object) -> bool:
        """Return True if an object is named ``name`` (or its NFC form)."""
        return self._key(name) is not None

    def _key(self, name: Any) -> str | None:
        """The key ``name`` is stored under, or None."""
        if not isinstance(name, str):
            return None
        if name in self._data:
            return name
        if not unicodedata.is_normalized('NFC', name):
            name = unicodedata.normalize('NFC', name)
            if name in self._data:
                return name
        return None

    def __len__(self) -> int:
        """Return the number of objects; O(1), loads no child."""
        return self._num_objects()

    def __bool__(self) -> bool:
        """Return True: a folder is true even when empty."""
        return True

    def __iter__(self) -> Iterator[str]:
        """Iterate over the names, in order (by name when unordered)."""
        order = self._order
        return iter(self._data if order is None else order)

    def keys(self, min: str | None = None, max: str | None = None,
             excludemin: bool = False, excludemax: bool = False) -> Any:
        """Return the names from ``min`` to ``max`` (inclusive unless
        excluded) as a lazy sequence; all names by default.

        Unordered, ``min`` and ``max`` are any strings and bound the
        names by value; ordered, they are names of children and bound
        them by position (``FolderKeyError`` if one is not a child).
        """
        order = self._order
        if order is None:
            return self._data.keys(min, max, excludemin, excludemax)
        low, high = self._position(min), self._position(max)
        return order.names(low, high, excludemin, excludemax)

    def values(self, min: str | None = None, max: str | None = None,
               excludemin: bool = False, excludemax: bool = False) -> Any:
        """Return the objects named ``min`` to ``max`` as a lazy sequence;
        like ``keys``. Objects come as ghosts until used."""
        if self._order is None:
            return self._data.values(min, max, excludemin, excludemax)
        names = self.keys(min, max, excludemin, excludemax)
        return _Children(names, self._data.__getitem__)

    def items(self, min: str | None = None, max: str | None = None,
              excludemin: bool = False, excludemax: bool = False) -> Any:
        """Return ``(name, object)`` pairs as a lazy sequence; like
        ``keys``."""
        if self._order is None:
            return self._data.items(min, max, excludemin, excludemax)
        names = self.keys(min, max, excludemin, excludemax)
        data = self._data
        return _Children(names, lambda name: (name, data[name]))

    def page(self, start: int = 0, size: int = 50,
             after: str | None = None) -> list[tuple[str, Any]]:
        """Return at most ``size`` ``(name, object)`` pairs in order,
        skipping the first ``start`` (of those after the name ``after``
        when given). Walks (loads) the BTree buckets up to the page but
        no child object: those returned come as ghosts. With ``after``
        (keyset paging) finding the page is O(log n), not O(start); in an
        ordered folder ``after`` must name a child (it pages by its
        position; else ``FolderKeyError``). Raise ``ValueError`` if
        ``start`` or ``size`` is negative."""
        if start < 0 or size < 0:
            raise ValueError(
                f'start and size must not be negative: {start}, {size}')
        order = self._order
        if order is not None:
            if after is None:
                names = order.names()
            else:
                names = order.names(self._position(after), None, True)
            data = self._data
            return [(name, data[name])
                    for name in islice(names, start, start + size)]
        if after is None:
            items = self._data.items()
        else:
            items = self._data.items(after, None, True, False)
        return list(islice(items, start, start + size))

    def __repr__(self) -> str:
        """``<module.Class 'name' len=N oid=0x..>`` (oid once stored)."""
        cls = type(self)
        oid = self._p_oid
        where = f' oid={int.from_bytes(oid, "big"):#x}' if oid else ''
        return (f'<{cls.__module__}.{cls.__qualname__} {self.__name__!r} '
                f'len={len(self)}{where}>')

    # -- order -------------------------------------------------------------

    @property
    def order(self) -> tuple[str, ...] | None:
        """The names in order, a tuple, or None when the folder is
        unordered (sorted by name). Setting it is :meth:`set_order`,
        deleting it :meth:`unset_order`. Loads every name: iterate the
        folder, or :meth:`page` it, for a big one."""
        order = self._order
        return None if order is None else tuple(order)

    @order.setter
    def order(self, names: Iterable[str] | None) -> None:
        self.set_order(names)

    @order.deleter
    def order(self) -> None:
        self.unset_order()

    def is_ordered(self) -> bool:
        """Return True if the folder has an order of its own."""
        return self._order is not None

    def set_order(self, names: Iterable[str] | None) -> None:
        """Order the children as ``names``: each child exactly once.

        From then on iteration, ``keys``, ``values``, ``items`` and
        ``page`` follow the order; an added child goes last, a removed one
        leaves it, a renamed or replaced one keeps its place. None is
        :meth:`unset_order`. Raise ``TypeError`` if ``names`` is a
        string, and ``ValueError`` naming the names that are not
        children, repeat, or are missing; all before anything changes.
        Writes O(n) records (the order is a :class:`FolderOrder`).
        """
        if names is None:
            self.unset_order()
            return
        names, keys = self._order_keys(names, 'set_order')
        unknown = [n for n, k in zip(names, keys, strict=True) if k is None]
        if unknown:
            raise ValueError(
                f'set_order: not in {self!r}: {_shown(unknown)}')
        repeated = _repeated(keys)
        if repeated:
            raise ValueError(
                f'set_order: names must not repeat: {_shown(repeated)}')
        if len(keys) != len(self):
            listed = set(keys)
            missing = [n for n in self._data.keys() if n not in listed]
            raise ValueError(
                f'set_order: every child must be listed; {len(missing)} '
                f'missing: {_shown(missing)}')
        if self._order is None:
            self._order = FolderOrder(keys)
        else:
            self._order.renumber(keys)

    def unset_order(self) -> None:
        """Make the folder unordered again: sorted by name."""
        if self._order is not None:
            del self._order

    def reorder(self, names: Iterable[str],
                before: str | None = None) -> None:
        """Move the children ``names``, in that order, to just before the
        child ``before``, or to the end when it is None; the others keep
        their order (Substance D's ``reorder``). When ``before`` is one of
        ``names`` they go where it was.

        Raise ``ValueError`` if the folder is unordered (:meth:`set_order`
        first) or a name repeats, ``TypeError`` if ``names`` is a string,
        and ``FolderKeyError`` if a name or ``before`` is not a child; all
        before anything changes. Writes a few records per name moved.
        """
        order = self._order
        if order is None:
            raise ValueError(
                f'reorder: {self!r} is unordered: set_order() first')
        names, keys = self._order_keys(names, 'reorder')
        for name, key in zip(names, keys, strict=True):
            if key is None:
                raise FolderKeyError(
                    f'reorder: {_show(name)} is not in {self!r}')
        repeated = _repeated(keys)
        if repeated:
            raise ValueError(
                f'reorder: names must not repeat: {_shown(repeated)}')
        anchor = None
        if before is not None:
            anchor = self._key(before)
            if anchor is None:
                raise FolderKeyError(
                    f'reorder: before={_show(before)} is not in {self!r}')
        order.move_before(keys, anchor)

    def _order_keys(
        self, names: Any, method: str,
    ) -> tuple[list[Any], list[str | None]]:
        """``names`` as a list, and the key of each (None: not a
        child); raise ``TypeError`` if ``names`` is a string."""
        if isinstance(names, str):
            raise TypeError(
                f'{method}: names must be a sequence of names, not a '
                f'string: {_show(names)}')
        names = list(names)
        return names, [self._key(name) for name in names]

    def _position(self, name: str | None) -> int | None:
        """The position of the child ``name`` in the order (None for
        None); raise ``FolderKeyError`` if it is not a child."""
        if name is None:
            return None
        key = self._key(name)
        if key is None:
            raise FolderKeyError(
                f'{_show(name)} is not in {self!r}: an ordered folder '
                f'takes the names of its children as bounds')
        return self._order.position(key)

    # -- names -------------------------------------------------------------

    def validate_name(self, name: Any) -> str:
        """Return ``name`` if it may name an object, else raise.

        Raise ``TypeError`` if it is not a ``str``; :class:`InvalidName`
        (a ``ValueError``) if it is empty, longer than
        :data:`MAX_NAME_LENGTH`, ``.`` or ``..``, contains ``/``, a
        control character, a line or paragraph separator, an invisible
        character that can disguise it (see :func:`invisible`) or a lone
        surrogate (not text: it cannot be encoded in a URL), starts or
        ends with whitespace, or starts with ``@@`` (views) or ``++``
        (namespaces). The name returned is in NFC, so that two spellings
        of one name cannot both exist. Does not look at the folder's
        contents.
        """
        if not isinstance(name, str):
            raise TypeError(
                f'Names must be strings, not {type(name).__name__}: '
                f'{name!r}')
        name = str(name)
        if not name:
            raise InvalidName('Names must not be empty: ""', name)
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidName(
                f'Names longer than {MAX_NAME_LENGTH} characters are not '
                f'allowed: {_show(name[:40])}... ({len(name)} characters)',
                name)
        if name in ('.', '..'):
            raise InvalidName(
                f'Names "." and ".." are not allowed: {_show(name)}', name)
        if '/' in name:
            raise InvalidName(
                f'Names which contain "/" are not allowed: {_show(name)}',
                name)
        for prefix in ('@@', '++'):
            if name.startswith(prefix):
                raise InvalidName(
                    f'Names which start with "{prefix}" are not allowed: '
                    f'{_show(name)}', name)
        if any(unicodedata.category(c) == 'Cc' for c in name):
            raise InvalidName(
                'Names which contain control characters are not allowed: '
                f'{_show(name)}', name)
        if any(unicodedata.category(c) == 'Cs' for c in name):
            raise InvalidName(
                'Names must be text: lone surrogates are not allowed: '
                f'{_show(name)}', name)
        if any(unicodedata.category(c) in ('Zl', 'Zp') for c in name):
            raise InvalidName(
                'Names which contain line or paragraph separators are not '
                f'allowed: {_show(name)}', name)
        if any(invisible(c) for c in name):
            raise InvalidName(
                'Names which contain invisible characters (bidirectional '
                'controls, zero-width characters, byte order marks, other '
                'format characters, fillers) are not allowed: '
                f'{_show(name)}', name)
        if name[0].isspace() or name[-1].isspace():
            raise InvalidName(
                'Names which start or end with whitespace are not allowed: '
                f'{_show(name)}', name)
        # One spelling per name: ``e`` + U+0301 is stored as ``é``.
        return unicodedata.normalize('NFC', name)

    def check_name(self, name: Any) -> str:
        """Return ``name`` if an object can be added under it.

        Raise what :meth:`validate_name` raises, and ``FolderKeyError`` if
        an object already has that name.
        """
        name = self.validate_name(name)
        if name in self:
            raise FolderKeyError(
                f'An object named {_show(name)} already exists in {self!r}')
        return name

    # -- writing -----------------------------------------------------------

    def __setitem__(self, name: str, other: Any) -> None:
        """Same as ``add(name, other)``."""
        self.add(name, other)

    def __delitem__(self, name: str) -> None:
        """Same as ``remove(name)``."""
        self.remove(name)

    def add(self, name: str, other: Any, send_events: bool = True,
            moving: Any = None, registry: Any = None) -> str:
        """Add ``other`` as ``name`` and return the name.

        Sets ``other.__parent__`` to this folder and ``other.__name__`` to
        ``name`` (if ``other`` can carry attributes); an ordered folder
        puts it last. Raise what :meth:`check_name` raises, and
        ``ValueError`` if ``other`` is still in a folder (``move`` it
        instead, or remove it first; a stale ``__parent__`` that does not
        hold ``other`` is simply overwritten) or is this folder or one of
        its ancestors. Sends ``ObjectWillBeAdded`` then ``ObjectAdded``
        for ``other`` and its descendants, unless ``send_events`` is
        false. ``moving``: the folder ``other`` comes from, when the
        caller moves it in steps of its own (after ``remove(name,
        moving=self)`` there); the events carry it as ``moving`` and
        ``old_parent``.
        """
        info: dict[str, Any] = {}
        if moving is not None:
            info = {'old_parent': moving, 'new_parent': self,
                    'new_name': self.validate_name(name)}
        return self._add(name, other, send_events, registry, info)

    def add_next(self, other: Any, prefix: str = '',
                 send_events: bool = True, registry: Any = None) -> str:
        """Add ``other`` under the next free name, ``prefix`` followed by
        a number (``'0'``, ``'1'``, ... or ``'doc-0'``, ...), and return
        the name; Substance D's ``add_next``, as :meth:`add` otherwise.

        Each prefix counts on its own, in a ``BTrees.Length`` that merges
        concurrent increments: two transactions adding at once conflict
        only on the name both picked, and the one retried takes the next.
        Names already taken (added by hand) are skipped; a number is not
        given again when its child is removed. Raise ``TypeError`` if
        ``prefix`` is not a string, ``InvalidName`` if no name may start
        with it and ``ValueError`` if :meth:`add` would refuse ``other``,
        all before counting. Writes the folder's record on the first
        call only (the counters).
        """
        if not isinstance(prefix, str):
            raise TypeError(
                f'prefix must be a string, not {type(prefix).__name__}: '
                f'{prefix!r}')
        prefix = self.validate_name(prefix + '0')[:-1]
        self._check_placeable(other)
        counters = self._autonames
        if counters is None:
            counters = self._autonames = OOBTree()
        counter = counters.get(prefix)
        if counter is None:
            counter = counters[prefix] = Length(0)
        while True:
            name = f'{prefix}{counter()}'
            counter.change(1)
            if name not in self:
                return self._add(name, other, send_events, registry, {})

    def remove(self, name: str, send_events: bool = True,
               moving: Any = None, registry: Any = None) -> Any:
        """Remove the object named ``name`` and return it.

        Sets its ``__parent__`` and ``__name__`` to None (its descendants
        stay in it); an ordered folder drops it from the order. Raise
        ``FolderKeyError`` if there is no such object. Sends
        ``ObjectWillBeRemoved`` then ``ObjectRemoved`` for its
        descendants and then the object, unless ``send_events`` is false.
        ``moving``: the folder the caller will add it to (a move in steps
        of its own); the events carry it as ``moving`` and
        ``new_parent``, so that subscribers do not take it for a delete.
        """
        info: dict[str, Any] = {}
        if moving is not None:
            info = {'old_parent': self, 'old_name': self._key(name),
                    'new_parent': moving}
        return self._remove(name, send_events, registry, info)

    def pop(self, name: str, default: Any = _MISSING,
            send_events: bool = True, registry: Any = None) -> Any:
        """Remove the object named ``name`` and return it, like
        :meth:`remove`; if there is none, return ``default`` or, without
        one, raise ``FolderKeyError``."""
        if name not in self:
            if default is _MISSING:
                raise FolderKeyError(name)
            return default
        return self._remove(name, send_events, registry, {})

    def clear(self, send_events: bool = True, registry: Any = None) -> None:
        """Remove every object, in name order, like :meth:`remove`.

        Loads every child (to reset its ``__parent__``). An ordered
        folder stays ordered (and empty)."""
        for name in list(self._data.keys()):
            self._remove(name, send_events, registry, {})

    def rename(self, oldname: str, newname: str, send_events: bool = True,
               registry: Any = None) -> Any:
        """Rename the object ``oldname`` to ``newname`` and return it.

        Same as ``move(oldname, self, newname)``: the events carry
        ``moving`` (this folder). It keeps its place in an ordered folder.
        """
        return self.move(oldname, self, newname, send_events, registry)

    def replace(self, name: str, newobject: Any, send_events: bool = True,
                registry: Any = None) -> Any:
        """Put ``newobject`` in place of the object named ``name`` and
        return the replaced object, or None if there was none (then this
        is just an add).

        Checks ``name`` and ``newobject`` first (raising what
        :meth:`add` raises) so a failure leaves the folder unchanged.
        Sends the remove events for the old object, then the add events
        for the new one (``moving`` None). The new object takes the old
        one's place in an ordered folder.
        """
        name = self.validate_name(name)
        old = self.get(name, _MISSING)
        if newobject is not old:
            self._check_placeable(newobject)
        position = None
        if old is not _MISSING:
            if self._order is not None:
                position = self._order.position(self._key(name))
            self._remove(name, send_events, registry, {})
        self._add(name, newobject, send_events, registry, {}, position)
        return None if old is _MISSING else old

    def move(self, name: str, other: Folder, newname: str | None = None,
             send_events: bool = True, registry: Any = None) -> Any:
        """Move the object named ``name`` into folder ``other`` as
        ``newname`` (default: ``name``) and return it.

        The same object moves, with its whole subtree; nothing is copied.
        Moving to the same folder and name does nothing; within one
        ordered folder (a rename) it keeps its place, into another one it
        goes last. Raise ``FolderKeyError`` if ``name`` is missing or
        ``newname`` taken, the errors of :meth:`validate_name`,
        ``TypeError`` if ``other`` is not a :class:`Folder` and
        ``ValueError`` if ``other`` is the object or inside it; all
        before anything changes. A remove then an add: sends the remove
        events, with ``moving`` set to ``other``, then the add events,
        with ``moving`` set to this folder (Substance D's convention);
        all of them carry ``old_parent``, ``old_name``, ``new_parent``
        and ``new_name``.
        """
        if not isinstance(other, Folder):
            raise TypeError(f'Can only move into a Folder, not {other!r}')
        obj = self[name]
        newname = name if newname is None else newname
        if other is self and newname == name:
            return obj
        newname = other.check_name(newname)
        other._check_not_ancestor(obj)
        info = {'old_parent': self, 'old_name': self._key(name),
                'new_parent': other, 'new_name': newname}
        position = None
        if other is self and self._order is not None:
            position = self._order.position(self._key(name))
        self._remove(name, send_events, registry, info)
        other._add(newname, obj, send_events, registry, info, position)
        return obj

    def copy(self, name: str, other: Folder, newname: str | None = None,
             send_events: bool = True, registry: Any = None) -> Any:
        """Add a copy of the object named ``name`` to folder ``other`` as
        ``newname`` (default: ``name``) and return the copy.

        The copy is a new object with a copy of the whole subtree: every
        persistent subobject is a new persistent object (no ``_p_oid``
        until committed) and blobs get their own data. Only references to
        *located* objects (with a ``__parent__``) outside the subtree are
        kept as references, so a copy does not drag in its parent or the
        rest of the site. It copies the in-memory state (uncommitted
        changes included) and works for objects not stored yet; ZODB's
        export/import would follow ``__parent__`` and export the whole
        database, and reads only committed state. Raise ``FolderKeyError``
        if ``name`` is missing or ``newname`` taken, the errors of
        :meth:`validate_name`, ``TypeError`` if ``other`` is not a
        :class:`Folder`. Sends the add events, with ``copied_from`` set to
        the original and ``moving`` None. The copy of an ordered folder
        keeps its order; an ordered ``other`` puts the copy last.
        """
        if not isinstance(other, Folder):
            raise TypeError(f'Can only copy into a Folder, not {other!r}')
        obj = self[name]
        newname = other.check_name(name if newname is None else newname)
        new = _Cloner(obj).clone()
        _locate(new, None, None)
        other._add(newname, new, send_events, registry, {'copied_from': obj})
        return new

    # -- implementation ------------------------------------------------------

    def _check_not_ancestor(self, obj: Any) -> None:
        """Raise ``ValueError`` if ``obj`` is this folder or an ancestor."""
        if inside(self, obj):
            raise ValueError(
                f'Cannot put {obj!r} into {self!r}: it would contain itself')

    def _check_placeable(self, obj: Any) -> None:
        """Raise ``ValueError`` if ``obj`` cannot be added here."""
        self._check_not_ancestor(obj)
        parent = getattr(obj, '__parent__', None)
        oldname = getattr(obj, '__name__', None)
        if IFolder.providedBy(parent) and parent.get(oldname) is obj:
            raise ValueError(
                f'{obj!r} is already in {parent!r} as {oldname!r}: move() '
                f'it, or remove it from there first')

    def _add(self, name: Any, other: Any, send_events: bool, registry: Any,
             info: dict[str, Any], position: int | None = None) -> str:
        """Add ``other`` (at ``position`` of an ordered folder, else
        last), sending the add events with ``info``."""
        name = self.check_name(name)
        self._check_placeable(other)
        registry = _event_registry(send_events, registry)
        if registry is not None:
            nodes = [(other, self, name)] + _subtree(other, postorder=False)
            for obj, parent, objname in nodes:
                _notify(registry, ObjectWillBeAdded(
                    obj, parent, objname, top=other, **info))
        _locate(other, self, name)
        self._data[name] = other
        self._num_objects.change(1)
        if self._order is not None:  # all an unordered folder pays
            self._order.insert(name, position)
        if registry is not None:
            for obj, parent, objname in nodes:
                _notify(registry, ObjectAdded(
                    obj, parent, objname, top=other, **info))
        return name

    def _remove(self, name: Any, send_events: bool, registry: Any,
                info: dict[str, Any]) -> Any:
        """Remove and return the object ``name``, sending the remove
        events with ``info``."""
        other = self[name]
        name = self._key(name)
        registry = _event_registry(send_events, registry)
        if registry is not None:
            nodes = _subtree(other, postorder=True) + [(other, self, name)]
            for obj, parent, objname in nodes:
                _notify(registry, ObjectWillBeRemoved(
                    obj, parent, objname, top=other, **info))
        del self._data[name]
        self._num_objects.change(-1)
        if self._order is not None:
            self._order.discard(name)
        _locate(other, None, None)
        if registry is not None:
            for obj, parent, objname in nodes:
                _notify(registry, ObjectRemoved(
                    obj, parent, objname, top=other, **info))
        return other


def _repeated(keys: list[Any]) -> list[Any]:
    """The items of ``keys`` that occur more than once, once each."""
    seen: set[Any] = set()
    repeated: dict[Any, None] = {}
    for key in keys:
        if key in seen:
            repeated[key] = None
        seen.add(key)
    return list(repeated)


def _event_registry(send_events: bool, registry: Any) -> Any:
    """The registry to notify, or None when no event needs sending."""
    if not send_events:
        return None
    if registry is None:
        registry = get_current_registry()
    if not getattr(registry, 'has_listeners', True):
        return None
    return registry


def _notify(registry: Any, event: ObjectEvent) -> None:
    """Send ``event`` to each shape of subscriber, once each.

    A component registry (Pyramid's) is asked for the subscribers of
    ``(event,)``, ``(event, object)`` and ``(event, object, parent)``:
    ``add_subscriber(h, IObjectAdded)``, ``add_subscriber(h,
    [IObjectAdded, IMyContent])`` and Substance D's ``[IObjectAdded,
    IMyContent, IMyFolder]``; a registration matches one length only. An
    object with just a ``notify(event)`` method gets the event once.
    """
    subscribers = getattr(registry, 'subscribers', None)
    if subscribers is None:
        registry.notify(event)
        return
    subscribers((event,), None)
    subscribers((event, event.object), None)
    subscribers((event, event.object, event.parent), None)


def _subtree(top: Any, postorder: bool) -> list[tuple[Any, Any, str]]:
    """``(object, parent, name)`` for every descendant of ``top``.

    Descendants are the contents of ``IFolder`` providers, recursively;
    siblings come in their folder's order (by name unless ordered),
    parents before their children (pre-order) or after them
    (``postorder``). Iterative: depth is not limited by the recursion
    limit.
    """
    found: list[tuple[Any, Any, str]] = []
    if not IFolder.providedBy(top):
        return found
    stack = [(top, None, None, iter(top.items()))]
    while stack:
        node, parent, name, children = stack[-1]
        for childname, child in children:
            if not postorder:
                found.append((child, node, childname))
            if IFolder.providedBy(child):
                stack.append((child, node, childname, iter(child.items())))
                break
            if postorder:
                found.append((child, node, childname))
        else:
            stack.pop()
            if postorder and parent is not None:
                found.append((node, parent, name))
    return found


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, cloner: _Cloner) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self.cloner = cloner

    def persistent_id(self, obj: Any) -> Any:
        return self.cloner.persistent_id(obj)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, cloner: _Cloner) -> None:
        super().__init__(file)
        self.cloner = cloner

    def persistent_load(self, pid: Any) -> Any:
        return self.cloner.objects[pid]


class _Cloner:
    """Copy ``top`` and its subtree the way ZODB stores and loads objects.

    Each persistent object is copied as a record of its own (so long
    bucket chains do not hit the recursion limit), from its in-memory
    state. Located objects outside the subtree are shared, not copied.
    """

    def __init__(self, top: Any) -> None:
        self.top = top
        self.objects: dict[int, Any] = {}  # id(original) -> its stand-in
        self.originals: list[Any] = []  # keeps ids unique while copying
        self.pending: list[tuple[Any, Any]] = []

    def clone(self) -> Any:
        """Return the copy of ``top``."""
        copy = self.copy_value(self.top)
        self.objects.setdefault(id(self.top), copy)  # non-persistent top
        while self.pending:
            original, new = self.pending.pop()
            original._p_activate()
            new.__setstate__(self.copy_value(original.__getstate__()))
        return copy

    def copy_value(self, value: Any) -> Any:
        """Return a copy of ``value``, persistent objects as stand-ins."""
        buf = io.BytesIO()
        _Pickler(buf, self).dump(value)
        buf.seek(0)
        return _Unpickler(buf, self).load()

    def persistent_id(self, obj: Any) -> int | None:
        """The key of ``obj``'s stand-in, or None to pickle it inline."""
        key = id(obj)
        if key in self.objects:
            return key
        if isinstance(obj, type):
            return None
        if obj is self.top:
            if not isinstance(obj, Persistent):
                return None  # inline in the first record; see clone()
            new = self._new_record(obj)
        elif hasattr(obj, '__parent__') and not self._inside(obj):
            new = obj
        elif isinstance(obj, Blob):
            new = Blob()
            with obj.open('r') as src, new.open('w') as dst:
                shutil.copyfileobj(src, dst)
        elif isinstance(obj, Persistent):
            new = self._new_record(obj)
        else:
            return None
        self.objects[key] = new
        self.originals.append(obj)
        return key

    def _new_record(self, obj: Persistent) -> Persistent:
        cls = type(obj)
        new = cls.__new__(cls)
        self.pending.append((obj, new))
        return new

    def _inside(self, obj: Any) -> bool:
        return inside(obj, self.top)
