"""A persistent, BTree-backed folder: the content container of the app.

Modelled on Substance D's folder: children in a :class:`FolderTree` keyed
by name and their number in a ``BTrees.Length``, both resolving write
conflicts, so that concurrent adds of distinct names rarely conflict,
adding never rewrites the folder's own record and ``len()`` is O(1). The
folder knows nothing of requests, storages or views: the one outside
thing it touches is the Pyramid registry it sends its object events
through (the order they come in is told in :class:`Folder`).
"""

from __future__ import annotations

import io
import pickle
import shutil
import unicodedata
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from pyramid.location import inside
from pyramid.threadlocal import get_current_registry
from ZODB.blob import Blob
from zope.interface import implementer

from .events import (
    ObjectAdded,
    ObjectRemoved,
    ObjectWillBeAdded,
    ObjectWillBeRemoved,
)
from .exceptions import FolderKeyError, InvalidName
from .interfaces import IFolder

__all__ = ['Folder', 'FolderTree', 'InvalidName', 'MAX_NAME_LENGTH']

#: The longest name a folder accepts, in characters.
MAX_NAME_LENGTH = 255

#: Characters a name may not hold: they make one name look like another
#: (a bidirectional control such as U+202E shows the rest of a name
#: reversed; zero-width characters and the byte order mark are not seen).
INVISIBLE = frozenset(
    '\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d'
    '\u202e\u2060\u2066\u2067\u2068\u2069\ufeff'
)

_MISSING: Any = object()


def _show(name: str) -> str:
    """``name`` in double quotes, control, invisible and surrogate
    characters escaped."""
    shown = ''.join(
        c.encode('unicode_escape').decode('ascii')
        if unicodedata.category(c) in ('Cc', 'Cs') or c in INVISIBLE
        else c
        for c in name
    )
    return f'"{shown}"'


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


@implementer(IFolder)
class Folder(Persistent):
    """A persistent mapping of names (``str``) to objects, sorted by name.

    ``data`` is an optional mapping of initial children, added without
    events. A folder is always true, even when empty.

    Events (classes in :mod:`pyramid_zeostore.events`), sent through
    ``registry`` (the current registry unless one is passed): adding
    ``obj`` sends ``ObjectWillBeAdded`` for ``obj`` and then for each of
    its descendants in pre-order (parents before children), adds it, then
    sends ``ObjectAdded`` in the same order; removing ``obj`` sends
    ``ObjectWillBeRemoved`` for each descendant in post-order (children
    before parents) and last for ``obj`` itself, removes it, then sends
    ``ObjectRemoved`` in the same order. Descendants are the contents of
    children that provide ``IFolder``, recursively; their events carry
    their own ``parent`` and ``name``, and ``top`` is ``obj``. A move is a
    remove then an add (events flagged ``moving``); a copy is an add of
    the copy (events carry ``copied_from``). Sending events loads the
    whole subtree; ``send_events=False`` (or a registry without
    subscribers) skips that.
    """

    __name__: str | None = None
    __parent__: Any = None

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
        """Iterate over the names, in sorted order."""
        return iter(self._data)

    def keys(self, min: str | None = None, max: str | None = None,
             excludemin: bool = False, excludemax: bool = False) -> Any:
        """Return the names from ``min`` to ``max`` (inclusive unless
        excluded) as a lazy BTree sequence; all names by default."""
        return self._data.keys(min, max, excludemin, excludemax)

    def values(self, min: str | None = None, max: str | None = None,
               excludemin: bool = False, excludemax: bool = False) -> Any:
        """Return the objects named ``min`` to ``max`` as a lazy sequence;
        like ``keys``. Objects come as ghosts until used."""
        return self._data.values(min, max, excludemin, excludemax)

    def items(self, min: str | None = None, max: str | None = None,
              excludemin: bool = False, excludemax: bool = False) -> Any:
        """Return ``(name, object)`` pairs as a lazy sequence; like
        ``keys``."""
        return self._data.items(min, max, excludemin, excludemax)

    def page(self, start: int = 0, size: int = 50,
             after: str | None = None) -> list[tuple[str, Any]]:
        """Return at most ``size`` ``(name, object)`` pairs in name order,
        skipping the first ``start`` (of those after the name ``after``
        when given). Walks (loads) the BTree buckets up to the page but
        no child object: those returned come as ghosts. With ``after``
        (keyset paging) finding the page is O(log n), not O(start).
        Raise ``ValueError`` if ``start`` or ``size`` is negative."""
        if start < 0 or size < 0:
            raise ValueError(
                f'start and size must not be negative: {start}, {size}')
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

    # -- names -------------------------------------------------------------

    def validate_name(self, name: Any) -> str:
        """Return ``name`` if it may name an object, else raise.

        Raise ``TypeError`` if it is not a ``str``; :class:`InvalidName`
        (a ``ValueError``) if it is empty, longer than
        :data:`MAX_NAME_LENGTH`, ``.`` or ``..``, contains ``/`` or a
        control character, an invisible character that can disguise it
        (bidirectional controls, zero-width characters, the byte order
        mark) or a lone surrogate (not text: it cannot be encoded in a
        URL), or starts with ``@@`` (views) or ``++`` (namespaces). The
        name returned is in NFC, so that two spellings of one name cannot
        both exist. Does not look at the folder's contents.
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
        if not INVISIBLE.isdisjoint(name):
            raise InvalidName(
                'Names which contain invisible characters (bidirectional '
                'controls, zero-width characters, byte order marks) are '
                f'not allowed: {_show(name)}', name)
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
            registry: Any = None) -> str:
        """Add ``other`` as ``name`` and return the name.

        Sets ``other.__parent__`` to this folder and ``other.__name__`` to
        ``name``. Raise what :meth:`check_name` raises, and ``ValueError``
        if ``other`` is still in a folder (``move`` it instead, or remove
        it first; a stale ``__parent__`` that does not hold ``other`` is
        simply overwritten) or is this folder or one of its ancestors.
        Sends ``ObjectWillBeAdded`` then ``ObjectAdded`` for ``other`` and
        its descendants, unless ``send_events`` is false.
        """
        return self._add(name, other, send_events, registry, {})

    def remove(self, name: str, send_events: bool = True,
               registry: Any = None) -> Any:
        """Remove the object named ``name`` and return it.

        Sets its ``__parent__`` and ``__name__`` to None (its descendants
        stay in it). Raise ``FolderKeyError`` if there is no such object.
        Sends ``ObjectWillBeRemoved`` then ``ObjectRemoved`` for its
        descendants and then the object, unless ``send_events`` is false.
        """
        return self._remove(name, send_events, registry, {})

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

        Loads every child (to reset its ``__parent__``)."""
        for name in list(self._data.keys()):
            self._remove(name, send_events, registry, {})

    def rename(self, oldname: str, newname: str, send_events: bool = True,
               registry: Any = None) -> Any:
        """Rename the object ``oldname`` to ``newname`` and return it.

        Same as ``move(oldname, self, newname)``.
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
        for the new one.
        """
        name = self.validate_name(name)
        old = self.get(name, _MISSING)
        if newobject is not old:
            self._check_placeable(newobject)
        if old is not _MISSING:
            self._remove(name, send_events, registry, {})
        self._add(name, newobject, send_events, registry, {})
        return None if old is _MISSING else old

    def move(self, name: str, other: Folder, newname: str | None = None,
             send_events: bool = True, registry: Any = None) -> Any:
        """Move the object named ``name`` into folder ``other`` as
        ``newname`` (default: ``name``) and return it.

        The same object moves, with its whole subtree; nothing is copied.
        Moving to the same folder and name does nothing. Raise
        ``FolderKeyError`` if ``name`` is missing or ``newname`` taken,
        the errors of :meth:`validate_name`, ``TypeError`` if ``other`` is
        not a :class:`Folder` and ``ValueError`` if ``other`` is the
        object or inside it; all before anything changes. A remove then
        an add: sends the remove events and then the add events, all with
        ``moving`` true and ``old_parent``, ``old_name``, ``new_parent``,
        ``new_name`` set.
        """
        if not isinstance(other, Folder):
            raise TypeError(f'Can only move into a Folder, not {other!r}')
        obj = self[name]
        newname = name if newname is None else newname
        if other is self and newname == name:
            return obj
        newname = other.check_name(newname)
        other._check_not_ancestor(obj)
        info = {'old_parent': self, 'old_name': name,
                'new_parent': other, 'new_name': newname}
        self._remove(name, send_events, registry, info)
        other._add(newname, obj, send_events, registry, info)
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
        the original.
        """
        if not isinstance(other, Folder):
            raise TypeError(f'Can only copy into a Folder, not {other!r}')
        obj = self[name]
        newname = other.check_name(name if newname is None else newname)
        new = _Cloner(obj).clone()
        new.__parent__ = None
        new.__name__ = None
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
             info: dict[str, Any]) -> str:
        name = self.check_name(name)
        self._check_placeable(other)
        registry = _event_registry(send_events, registry)
        if registry is not None:
            nodes = [(other, self, name)] + _subtree(other, postorder=False)
            for obj, parent, objname in nodes:
                registry.notify(ObjectWillBeAdded(
                    obj, parent, objname, top=other, **info))
        other.__parent__ = self
        other.__name__ = name
        self._data[name] = other
        self._num_objects.change(1)
        if registry is not None:
            for obj, parent, objname in nodes:
                registry.notify(ObjectAdded(
                    obj, parent, objname, top=other, **info))
        return name

    def _remove(self, name: Any, send_events: bool, registry: Any,
                info: dict[str, Any]) -> Any:
        other = self[name]
        name = self._key(name)
        registry = _event_registry(send_events, registry)
        if registry is not None:
            nodes = _subtree(other, postorder=True) + [(other, self, name)]
            for obj, parent, objname in nodes:
                registry.notify(ObjectWillBeRemoved(
                    obj, parent, objname, top=other, **info))
        del self._data[name]
        self._num_objects.change(-1)
        other.__parent__ = None
        other.__name__ = None
        if registry is not None:
            for obj, parent, objname in nodes:
                registry.notify(ObjectRemoved(
                    obj, parent, objname, top=other, **info))
        return other


def _event_registry(send_events: bool, registry: Any) -> Any:
    """The registry to notify, or None when no event needs sending."""
    if not send_events:
        return None
    if registry is None:
        registry = get_current_registry()
    if not getattr(registry, 'has_listeners', True):
        return None
    return registry


def _subtree(top: Any, postorder: bool) -> list[tuple[Any, Any, str]]:
    """``(object, parent, name)`` for every descendant of ``top``.

    Descendants are the contents of ``IFolder`` providers, recursively;
    siblings come in name order, parents before their children
    (pre-order) or after them (``postorder``). Iterative: depth is not
    limited by the recursion limit.
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
