"""An object's past revisions, the database's transactions, and undo.

As zodbbrowser's history and Zope's Undo tab: ``@@manage-history``
lists an object's last revisions where the storage keeps them (FileStorage,
ZEO over it), each with its transaction's time, user and note and the
attributes it stored, and compares two of them. Old records are read
with a restricted unpickler that never imports the app's classes: every
class a record names becomes a stand-in that only holds what the pickle
gives it, every reference a placeholder with its oid. ``@@manage-
transactions`` pages through the undo log, each transaction with an
Undo button; ``@@manage-undo`` undoes one in the request's transaction
and commits it in the view, because an undo that cannot be done
(:class:`~ZODB.POSException.UndoError`) is only found at commit (the
storage's ``undo`` runs in the transaction's commit phase; over ZEO, at
the vote): the view must see it to answer the page with the reason
(409) rather than an error page.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import io
import pickle
import re
from functools import partial
from typing import Any
from urllib.parse import urlencode

from persistent import Persistent
from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound, HTTPSeeOther
from pyramid.traversal import resource_path
from ZODB.POSException import POSKeyError, UndoError
from ZODB.TimeStamp import TimeStamp
from ZODB.utils import p64

from ..connection import get_databases
from ..folder import Folder
from . import render, views

MANAGE = {'permission': 'manage'}
READ = ('GET', 'HEAD')

#: The most revisions one history page lists.
MAX_REVISIONS = 50
#: The most record bytes one history page unpickles (older rows go
#: without their attributes).
MAX_LOADED = 4 * 1024 * 1024
#: How many attribute names a revision's summary of changes names.
MAX_NAMES = 20
#: Transactions on one page of the undo log, and the furthest page.
TXN_PAGE = 20
MAX_FIRST = 100_000
MAX_ID = 200  # hex digits of an undo log id


# -- reading old records without the app's code ------------------------------


class Stored:
    """Stands in for a class a record names: it holds the arguments,
    state and members the pickle gives it and runs nothing else."""

    def __new__(cls, *args: Any, **kw: Any) -> Any:
        self = object.__new__(cls)
        self.__dict__['_stored'] = [args, None, []]
        return self

    def __init__(self, *args: Any, **kw: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self._stored[1] = state

    def append(self, item: Any) -> None:
        self._stored[2].append(item)

    def extend(self, items: Any) -> None:
        self._stored[2].extend(items)

    add = append

    def __setitem__(self, key: Any, value: Any) -> None:
        self._stored[2].append((key, value))

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self._stored == other._stored

    def __hash__(self) -> int:
        return hash(type(self))


class Reference(Persistent):
    """Stands in for a persistent object a record refers to (its oid)."""

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self._p_oid == other._p_oid

    def __hash__(self) -> int:
        return hash(self._p_oid)


class OtherDatabaseReference(Stored):
    """A reference into another database of the multi-database."""


_NAME = re.compile(r'[^\W\d][\w.]{0,199}\Z')
_classes: dict = {}
MAX_CLASSES = 1000


def stand_in(base: type, module: Any, name: Any) -> type:
    """A subclass of ``base`` named ``module.name`` (made once; ``base``
    itself for a name that is no dotted identifier)."""
    key = (base, module, name)
    cls = _classes.get(key)
    if cls is not None:
        return cls
    if not (isinstance(module, str) and isinstance(name, str)
            and _NAME.match(module) and _NAME.match(name)
            and len(_classes) < MAX_CLASSES):
        return base
    cls = type(name.rsplit('.', 1)[-1], (base,), {
        '__module__': module, '__qualname__': name, '__slots__': ()})
    _classes[key] = cls
    return cls


def _class_name(cls: Any) -> str:
    if isinstance(cls, tuple) and len(cls) == 2 and all(
            isinstance(part, str) for part in cls):
        return '.'.join(cls)  # an old record's (module, name)
    if isinstance(cls, type):
        return f'{cls.__module__}.{cls.__qualname__}'
    return '?'


def _latin1(text: Any, encoding: Any = 'latin1') -> bytes:
    """``_codecs.encode`` as protocol 2 pickles bytes with it, only."""
    if not isinstance(text, str) or str(encoding).replace(
            '-', '').replace('_', '').lower() != 'latin1':
        raise pickle.UnpicklingError('unexpected _codecs.encode')
    return text.encode('latin-1')


def _bytearray(*args: Any) -> bytearray:
    if args and not isinstance(args[0], (bytes, str)):
        raise pickle.UnpicklingError('unexpected bytearray arguments')
    if args and isinstance(args[0], str):
        return bytearray(_latin1(*args))
    return bytearray(*args)


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` for stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, Stored)):
        raise pickle.UnpicklingError('unexpected copyreg._reconstructor')
    return cls(state) if state is not None else cls()


#: The classes and functions a record may use for real: values without
#: code of their own that could surprise.
SAFE = {
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('builtins', 'complex'): complex,
    ('builtins', 'bytearray'): _bytearray,
    ('datetime', 'date'): datetime.date,
    ('datetime', 'datetime'): datetime.datetime,
    ('datetime', 'time'): datetime.time,
    ('datetime', 'timedelta'): datetime.timedelta,
    ('datetime', 'timezone'): datetime.timezone,
    ('decimal', 'Decimal'): decimal.Decimal,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('_codecs', 'encode'): _latin1,
    ('copyreg', '_reconstructor'): _reconstructor,
    ('zodbpickle', 'binary'): bytes,
}
ALIASES = {'__builtin__': 'builtins', 'copy_reg': 'copyreg'}


class RecordReader(pickle.Unpickler):
    """Unpickles a ZODB record with stand-ins for classes and
    placeholders for references (the forms of ZODB.serialize)."""

    def find_class(self, module: str, name: str) -> Any:
        module = ALIASES.get(module, module)
        found = SAFE.get((module, name))
        return found if found is not None else stand_in(Stored, module,
                                                        name)

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 2:
            return _reference(pid[0], pid[1])
        if isinstance(pid, (bytes, str)):
            return _reference(pid, None)
        if isinstance(pid, list) and len(pid) == 1:  # an old weak ref
            return _reference(pid[0], ('persistent.wref', 'WeakRef'))
        if isinstance(pid, list) and len(pid) == 2 and isinstance(
                pid[1], tuple) and pid[1]:
            kind, args = pid
            if kind == 'w' and len(args) == 1:
                return _reference(args[0], ('persistent.wref', 'WeakRef'))
            if kind in ('w', 'm', 'n'):
                return OtherDatabaseReference(*args[:2])
        raise pickle.UnpicklingError('unexpected persistent reference')


def _reference(oid: Any, cls: Any) -> Reference:
    if isinstance(oid, str):
        oid = oid.encode('ascii')
    if not isinstance(oid, bytes) or len(oid) != 8:
        raise pickle.UnpicklingError('unexpected oid')
    found = Reference
    if cls is not None:
        name = _class_name(cls)
        if name != '?':
            module, _, qualname = name.rpartition('.')
            found = stand_in(Reference, module, qualname)
    ref = found.__new__(found)
    ref._p_oid = oid
    return ref


def stored_attributes(state: Any) -> dict:
    """A record's state as attributes: its dict, both dicts of a
    (``__dict__``, slots) pair, else the whole state as ``(state)``."""
    if state is None:
        return {}
    if isinstance(state, dict):
        return dict(state)
    if isinstance(state, tuple) and len(state) == 2 and all(
            part is None or isinstance(part, dict) for part in state):
        return {**(state[0] or {}), **(state[1] or {})}
    return {'(state)': state}


def read_record(data: bytes) -> tuple[str, dict]:
    """(class name, stored attributes) of one record, safely."""
    reader = RecordReader(io.BytesIO(data))
    meta = reader.load()
    state = reader.load()
    if isinstance(meta, tuple) and meta and not all(
            isinstance(part, str) for part in meta):
        meta = meta[0]  # (class, arguments to __new__)
    return _class_name(meta), stored_attributes(state)


def same(old: Any, new: Any) -> bool:
    """Whether two read values are equal (types too)."""
    try:
        return type(old) is type(new) and bool(old == new)
    except Exception:  # noqa: BLE001 - deep, cyclic or odd values
        return False


def diff(old: dict, new: dict) -> dict:
    """The attributes ``new`` added to, removed from and changed of
    ``old``: names, by name."""
    return {
        'added': sorted((k for k in new if k not in old), key=str),
        'removed': sorted((k for k in old if k not in new), key=str),
        'changed': sorted((k for k in new if k in old
                           and not same(old[k], new[k])), key=str),
    }


def shown_diff(old: dict, new: dict) -> dict:
    """:func:`diff` with the values shown: added and removed as (name,
    Shown), changed as (name, old Shown, new Shown)."""
    names = diff(old, new)
    return {
        'added': [(str(k), render.show(new[k])) for k in names['added']],
        'removed': [(str(k), render.show(old[k]))
                    for k in names['removed']],
        'changed': [(str(k), render.show(old[k]), render.show(new[k]))
                    for k in names['changed']],
        'unchanged': len(new) - len(names['added']) - len(names['changed']),
    }


# -- history -----------------------------------------------------------------


def _hex_tid(text: Any, name: str) -> bytes:
    if not (isinstance(text, str) and len(text) == 16 and all(
            c in '0123456789abcdefABCDEF' for c in text)):
        raise HTTPBadRequest(f'?{name}: expected a transaction id of 16 '
                             'hex digits')
    return bytes.fromhex(text)


def _target(context: Any, request: Any) -> dict:
    """The object whose history is asked: ``?oid=HEX`` (of the primary
    database), else the context; by oid, never loaded."""
    text = request.GET.get('oid')
    if text:
        if not (1 <= len(text) <= 16 and all(
                c in '0123456789abcdefABCDEF' for c in text)):
            raise HTTPNotFound(f'{text!r} is no oid')
        oid = p64(int(text, 16))
        root = request.root
        return {
            'db': get_databases(request.registry).get(''), 'oid': oid,
            'title': f'oid {int(text, 16):016x}', 'crumbs': [],
            'back_url': views.oid_url(request, f'{int(text, 16):016x}'),
            'query': {'oid': f'{int(text, 16):016x}'},
            'self_url': views.manage_url(request, root, 'manage-history'),
        }
    oid = getattr(context, '_p_oid', None)
    jar = getattr(context, '_p_jar', None)
    if oid is None or jar is None:
        raise HTTPNotFound('this object is not stored: it has no history')
    return {
        'db': jar.db(), 'oid': oid, 'title': resource_path(context),
        'crumbs': views.breadcrumbs(request, context),
        'back_url': views.manage_url(
            request, context,
            'manage-object' if isinstance(context, Folder) else 'manage'),
        'query': {},
        'self_url': views.manage_url(request, context, 'manage-history'),
    }


def _load(db: Any, oid: bytes, tid: bytes) -> dict:
    """One revision read: ``class``, ``attributes`` or ``error``."""
    data = db.storage.loadSerial(oid, tid)
    try:
        name, state = read_record(data)
    except Exception as e:  # noqa: BLE001 - a record we cannot read
        return {'error': f'unreadable: {type(e).__name__}: {e}'[:300],
                'bytes': len(data)}
    return {'class': name, 'attributes': state, 'bytes': len(data)}


def revisions(db: Any, oid: bytes) -> tuple[list[dict], bool, str | None]:
    """The object's last revisions, newest first, each with its record
    read (within :data:`MAX_LOADED` bytes in all); whether older ones
    exist; why there are none (a storage without history)."""
    try:
        found = views.history_of(db, oid, MAX_REVISIONS + 1)
    except POSKeyError:
        raise HTTPNotFound('no object with this oid') from None
    except Exception as e:  # noqa: BLE001 - a storage without history
        return [], False, (f'This storage ({render.type_name(db.storage)}) '
                           f'keeps no history: {type(e).__name__}')
    if not found:  # of an object that exists (a missing oid raises)
        return [], False, (f'This storage ({render.type_name(db.storage)}) '
                           'keeps no history of this object')
    more = len(found) > MAX_REVISIONS
    rows = []
    budget = MAX_LOADED
    for entry in found[:MAX_REVISIONS]:
        tid = entry.get('tid') or entry.get('serial')
        row = {
            'tid': tid.hex(), 'time': views._when(entry.get('time')),
            'user': views._text(entry.get('user_name')),
            'note': views._text(entry.get('description')),
            'size': entry.get('size'),
        }
        if budget > 0:
            record = _load(db, oid, tid)
            budget -= record['bytes']
            row.update(record)
        else:
            row['error'] = 'not read: this page read enough records'
        rows.append(row)
    for at, newer in enumerate(rows):
        older = rows[at + 1] if at + 1 < len(rows) else None
        if 'attributes' not in newer:
            continue
        if older is None:
            newer['changes'] = None if more else 'created'
        elif 'attributes' in older:
            newer['changes'] = {
                k: [str(n) for n in v][:MAX_NAMES]
                for k, v in diff(older['attributes'],
                                 newer['attributes']).items()
            }
    return rows, more, None


def _side(db: Any, oid: bytes, rows: list[dict], name: str,
          text: str) -> dict:
    """One revision to compare: a listed row, read if it was not."""
    tid = _hex_tid(text, name)
    row = next((r for r in rows if r['tid'] == tid.hex()), None)
    if row is not None and 'bytes' in row:
        return row
    try:
        loaded = _load(db, oid, tid)
    except POSKeyError:
        raise HTTPBadRequest(f'?{name}={text}: no revision of this '
                             'object') from None
    base = row or {'tid': tid.hex(),
                   'time': views._when(TimeStamp(tid).timeTime())}
    return {**{k: v for k, v in base.items() if k != 'error'}, **loaded}


def history(context: Any, request: Any) -> Any:
    """``@@manage-history``: the object's revisions and a comparison of
    two (``?a=TID&b=TID``; by default the last two)."""
    target = _target(context, request)
    db, oid = target['db'], target['oid']
    rows, more, no_history = revisions(db, oid)
    compared = None
    a, b = request.GET.get('a'), request.GET.get('b')
    if (a or b or len(rows) >= 2) and not no_history:
        if not (a or b):
            a, b = rows[1]['tid'], rows[0]['tid']
        if not (a and b):
            raise HTTPBadRequest('?a= and ?b=: give both revisions')
        old = _side(db, oid, rows, 'a', a)
        new = _side(db, oid, rows, 'b', b)
        compared = {'a': old, 'b': new,
                    'error': old.get('error') or new.get('error')}
        if not compared['error']:
            compared.update(shown_diff(old['attributes'],
                                       new['attributes']))
    for row in rows:
        if 'attributes' in row:
            row['shown'] = [(str(k), render.show(v)) for k, v in sorted(
                row['attributes'].items(), key=lambda kv: str(kv[0]))]
    type_name = next((row['class'] for row in rows if 'class' in row), '')
    return views.page(
        request, 'history.jinja2', crumbs=target['crumbs'],
        title=target['title'], back_url=target['back_url'],
        self_url=target['self_url'], query=target['query'],
        type_name=type_name, rows=rows, more=more, no_history=no_history,
        compared=compared, oid=f'{int.from_bytes(oid, "big"):016x}',
        oid_url=partial(views.oid_url, request),
        compare_url=lambda a, b: target['self_url'] + '?' + urlencode(
            {**target['query'], 'a': a, 'b': b}),
        max_revisions=MAX_REVISIONS,
    )


# -- transactions and undo ---------------------------------------------------

#: A path in a note ('added item /docs/x', 'deleted /a, /b', 'renamed
#: /a to /b'); the request paths pyramid_tm notes (with @@) are left out.
PATH = re.compile(r'(?<![\w/@.])/[^\s,"\'<>]*')


def paths_in(note: str) -> list[str]:
    return [p for p in PATH.findall(note) if '@@' not in p][:10]


def _database(request: Any, name: Any) -> tuple[str, Any]:
    databases = get_databases(request.registry)
    if not isinstance(name, str) or name not in databases.names:
        raise HTTPNotFound(f'no database named {name!r}')
    return name, databases.get(name)


def _first(request: Any) -> int:
    raw = request.GET.get('first') or '0'
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_FIRST:
        raise HTTPBadRequest(f'?first: expected a whole number from 0 to '
                             f'{MAX_FIRST}')
    return int(raw)


def summary(description: str) -> str:
    """A transaction's note without the request path pyramid_tm puts
    first, on one line."""
    lines = [line for line in description.splitlines() if line.strip()]
    told = [line for line in lines
            if not (line.startswith('/') and '@@' in line)]
    return '; '.join(told or lines)


def transactions_view(context: Any, request: Any) -> Any:
    """``@@manage-transactions``: the undo log a page at a time
    (``?first=N``, ``?db=NAME``), each with an Undo button."""
    return transactions(context, request)


def transactions(context: Any, request: Any, status: int = 200,
                 error: str | None = None, first: int | None = None,
                 name: str | None = None) -> Any:
    """The transactions page; the undo view answers it with an error."""
    if name is None:
        name = request.GET.get('db', '')
    name, db = _database(request, name)
    if first is None:
        first = _first(request)
    undoable = db.supportsUndo()
    entries = views.undo_log(db, first, first + TXN_PAGE + 1)
    rows = []
    for entry in entries[:TXN_PAGE]:
        note = views._text(entry.get('description'))
        rows.append({
            'id': _id_bytes(entry.get('id')).hex(),
            'time': views._when(entry.get('time')),
            'user': views._text(entry.get('user_name')),
            'note': note,
            'paths': [(p, request.application_url + p.rstrip('/')
                       + '/@@manage') for p in paths_in(note)],
            'size': entry.get('size'),
        })

    def url(at: int) -> str:
        return views.manage_url(request, request.root,
                                'manage-transactions',
                                first=at or None, db=name or None)

    names = get_databases(request.registry).names
    return views.page(
        request, 'transactions.jinja2', status=status, crumbs=[],
        rows=rows, first=first, name=name, undoable=undoable,
        storage=render.type_name(db.storage), error=error,
        done=request.GET.get('done') == '1' and not error,
        newer_url=url(max(0, first - TXN_PAGE)) if first else None,
        older_url=url(first + TXN_PAGE) if len(entries) > TXN_PAGE
        and first + TXN_PAGE <= MAX_FIRST else None,
        undo_url=views.manage_url(request, request.root, 'manage-undo'),
        databases=[(n, views.manage_url(
            request, request.root, 'manage-transactions', db=n or None))
            for n in names] if len(names) > 1 else [],
    )


def _id_bytes(value: Any) -> bytes:
    return bytes(value) if isinstance(value, (bytes, bytearray)) else (
        str(value).encode('utf-8'))


def _find(db: Any, undo_id: bytes, first: int) -> dict | None:
    """The undo log entry of ``undo_id``, looked for around the page
    the form was on (later transactions push it further)."""
    start = max(0, first - TXN_PAGE)
    for entry in views.undo_log(db, start, first + 5 * TXN_PAGE):
        if _id_bytes(entry.get('id')) == undo_id:
            return entry
    return None


def why(error: UndoError) -> str:
    """What an UndoError says, once (MultipleUndoErrors repeats it)."""
    reasons = []
    for oid, each in getattr(error, '_errs', None) or [(None, error)]:
        text = (each.args[0] if getattr(each, 'args', None)
                and isinstance(each.args[0], str) else str(each))
        oid = getattr(each, '_oid', None) or oid
        if isinstance(oid, bytes) and len(oid) == 8:
            text += f' (oid {int.from_bytes(oid, "big"):016x})'
        reasons.append(text)
    return '; '.join(dict.fromkeys(reasons))[:500]


def undo(context: Any, request: Any) -> Any:
    """``@@manage-undo`` (POST ``id``, ``db``, ``first``): undo one
    transaction, as a transaction of its own, noted."""
    name, db = _database(request, views._field(request, 'db',
                                               required=False))
    raw = views._field(request, 'id').strip()
    try:
        first = int(views._field(request, 'first', required=False) or 0)
        undo_id = bytes.fromhex(raw)
        if len(raw) > MAX_ID or not 0 <= first <= MAX_FIRST:
            raise ValueError(raw)
    except ValueError:
        raise HTTPBadRequest('id: expected the hex id of an undo log '
                             'entry') from None
    undoable = db.supportsUndo()
    # Only an id of the log: a storage may fail on others (FileStorage
    # asserts on one that is not base64 of 8 bytes).
    found = _find(db, undo_id, first) if undoable else None
    told = summary(views._text(found.get('description'))) if found else ''
    label = f'"{told}"' if told else 'this transaction'
    try:
        if not undoable:
            raise UndoError('this storage keeps no undo log')
        if found is None:
            raise UndoError('it is not in the undo log near where the '
                            'page was (reload the page)')
        db.undo(undo_id, request.tm.get())
        views.note(request, f'undid {label}'[:1000])
        request.tm.commit()  # an undo that cannot be done fails here
    except UndoError as e:
        request.tm.abort()
        request.tm.begin()
        return transactions(
            context, request, status=409, first=first, name=name,
            error=f'Cannot undo {label}: {why(e)}. Nothing was changed.')
    request.tm.begin()  # pyramid_tm ends the request's own
    return HTTPSeeOther(views.manage_url(
        request, request.root, 'manage-transactions', done='1',
        db=name or None))


def includeme(config: Any) -> None:
    """Register this module's pages."""
    config.add_view(history, name='manage-history', request_method=READ,
                    **MANAGE)
    config.add_view(transactions_view, name='manage-transactions',
                    request_method=READ, **MANAGE)
    config.add_view(undo, name='manage-undo', request_method='POST',
                    **MANAGE)
