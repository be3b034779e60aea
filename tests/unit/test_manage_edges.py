"""The object browser's rarer record forms and storages, without a
server: records written by ZODB itself (MappingStorage, FileStorage in a
temporary folder) or pickled as older code wrote them, read back by the
restricted reader of :mod:`pyramid_zeostore.manage.history`; an object
whose records were packed away while a connection held it; a storage on
ZODB's ``BaseStorage`` that keeps no history.

Checked: a list subclass with one item, stand-ins and references as set
members and dict keys, a class named by something that is no class, a
``bytearray`` pickled as Python 2 and Python 3 before 3.8 did, an old
weak reference (``[oid]``), an oid pickled as text (protocol 0), a
record whose class takes arguments to ``__new__``; the last change and
the revisions of an object whose storage has no history of it.
"""

from __future__ import annotations

import io
import pickle

import pytest
import transaction
import ZODB
from persistent import Persistent
from pyramid.httpexceptions import HTTPNotFound
from ZODB.BaseStorage import BaseStorage
from ZODB.FileStorage import FileStorage
from ZODB.MappingStorage import MappingStorage
from ZODB.POSException import POSKeyError

from pyramid_zeostore.manage import history, render, views

OID = b'\x00' * 7 + b'\x2a'


class Thing(Persistent):
    """A persistent app class of the records below."""


class Listy(list):
    pass


class Value:
    """A plain app value, hashable, inside a record."""

    def __init__(self, n):
        self.n = n


class Py2Bytearray:
    """Pickles as Python 2 (and Python 3 before 3.8) pickled a
    ``bytearray``: ``bytearray(text, 'latin-1')``."""

    def __init__(self, data: bytes):
        self.data = data

    def __reduce__(self):
        return (bytearray, (self.data.decode('latin-1'), 'latin-1'))


class WithArgs(Persistent):
    """A persistent class whose record gives ``__new__`` arguments: ZODB
    writes its class as ``(class, args)``."""

    def __new__(cls, size=0):
        return super().__new__(cls)

    def __init__(self, size=0):
        self.size = size

    def __getnewargs__(self):
        return (self.size,)


def record(meta, state, protocol=3, persistent_id=None) -> bytes:
    """A record as ZODB writes one: two pickles, one after the other;
    ``persistent_id`` as the pickler's."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol)
    if persistent_id is not None:
        pickler.persistent_id = persistent_id
    pickler.dump(meta)
    pickler.dump(state)
    return buf.getvalue()


def committed(db, obj):
    """``obj`` committed under the root; its oid and its record."""
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    try:
        conn.root()['x'] = obj
        tm.commit()
        return obj._p_oid, db.storage.load(obj._p_oid)[0]
    finally:
        conn.close()


@pytest.fixture
def db():
    db = ZODB.DB(MappingStorage())
    yield db
    db.close()


# -- the reader ---------------------------------------------------------------


@pytest.mark.parametrize('protocol', [2, 3, 4, 5])
def test_a_list_subclass_of_one_item(protocol):
    # one item is pickled with APPEND, more with APPENDS
    _, attrs = history.read_record(record(
        Thing, {'one': Listy(['only']), 'two': Listy([1, 2])}, protocol))
    assert render.type_name(attrs['one']) == (
        'tests.unit.test_manage_edges.Listy')
    assert attrs['one']._stored[2] == ['only']
    assert attrs['two']._stored[2] == [1, 2]
    assert not history.same(attrs['one'], attrs['two'])


def test_a_record_that_adds_set_items_to_a_class():
    # No pickler writes this (a set subclass pickles its items as an
    # argument), but a record is data: ADDITEMS on a stand-in calls its
    # ``add``, which holds the items and runs nothing.
    state = (b'\x80\x04capp.things\nTags\n)\x81'  # Tags.__new__()
             b'(K\x01X\x03\x00\x00\x00two\x90.')  # add 1, 'two'
    name, attrs = history.read_record(pickle.dumps(Thing) + state)
    assert name == 'tests.unit.test_manage_edges.Thing'
    tags = attrs['(state)']
    assert render.type_name(tags) == 'app.things.Tags'
    assert tags._stored == [(), None, [1, 'two']]


@pytest.mark.parametrize('protocol', range(6))
def test_stand_ins_as_set_members_and_dict_keys(protocol):
    _, attrs = history.read_record(record(
        Thing, {'values': {Value(1)}, 'by': {Value(2): 'two'}}, protocol))
    (member,) = attrs['values']
    assert isinstance(member, history.Stored)
    assert render.type_name(member) == 'tests.unit.test_manage_edges.Value'
    (key,) = attrs['by']
    assert attrs['by'][key] == 'two' and key._stored[1] == {'n': 2}
    # equal stand-ins are one member of a set
    assert len({member, *history.read_record(record(
        Thing, {'values': {Value(1)}}, protocol))[1]['values']}) == 1


def test_references_as_set_members_and_dict_keys(db):
    one, two = Thing(), Thing()
    holder = Thing()
    holder.members = {one, two}
    holder.by = {one: 'first'}
    oid, data = committed(db, holder)
    _, attrs = history.read_record(data)
    assert {r._p_oid for r in attrs['members']} == {one._p_oid, two._p_oid}
    assert all(isinstance(r, history.Reference) for r in attrs['members'])
    (key,) = attrs['by']
    assert key._p_oid == one._p_oid and key in attrs['members']
    assert attrs['by'][key] == 'first'
    assert render.type_name(key) == 'tests.unit.test_manage_edges.Thing'


def test_a_class_named_by_something_that_is_no_class():
    assert history.read_record(record(42, {'a': 1})) == ('?', {'a': 1})
    reader = history.RecordReader(io.BytesIO(b''))
    ref = reader.persistent_load((OID, 42))
    assert type(ref) is history.Reference and ref._p_oid == OID
    assert render.type_name(ref) == 'pyramid_zeostore.manage.history.' \
        'Reference'


@pytest.mark.parametrize('protocol', [0, 1, 2])
def test_a_bytearray_pickled_as_python_2_did(protocol):
    data = b'\x00\xe9\xff'
    _, attrs = history.read_record(record(
        Thing, {'raw': Py2Bytearray(data)}, protocol))
    assert attrs['raw'] == bytearray(data)
    assert type(attrs['raw']) is bytearray


def test_an_old_weak_reference_and_an_oid_pickled_as_text():
    def old_ids(obj):
        if obj == 'weak':
            return [OID]  # ZODB 3's weak reference
        if obj == 'text':
            return 'abcdefgh'  # protocol 0 reads its id as text
        if obj == 'short':
            return 'abc'
        return None

    _, attrs = history.read_record(record(
        Thing, {'w': 'weak'}, 1, persistent_id=old_ids))
    assert render.type_name(attrs['w']) == 'persistent.wref.WeakRef'
    assert attrs['w']._p_oid == OID
    _, attrs = history.read_record(record(
        Thing, {'t': 'text'}, 0, persistent_id=old_ids))
    assert type(attrs['t']) is history.Reference
    assert attrs['t']._p_oid == b'abcdefgh'
    with pytest.raises(pickle.UnpicklingError, match='unexpected oid'):
        history.read_record(record(Thing, {'t': 'short'}, 0,
                                   persistent_id=old_ids))


def test_a_record_whose_class_takes_arguments(db):
    oid, data = committed(db, WithArgs(7))
    meta = pickle.loads(data)  # what ZODB wrote: (class, args)
    assert meta == (WithArgs, (7,))
    name, attrs = history.read_record(data)
    assert name == 'tests.unit.test_manage_edges.WithArgs'
    assert attrs == {'size': 7}
    rows, more, why = history.revisions(db, oid)
    assert rows[0]['class'] == name and rows[0]['changes'] == 'created'


# -- objects and storages without history -------------------------------------


def test_an_object_packed_away_while_a_connection_holds_it(tmp_path):
    db = ZODB.DB(FileStorage(str(tmp_path / 'Data.fs')))
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    try:
        obj = conn.root()['x'] = Thing()
        obj.title = 'gone soon'
        tm.get().note('made x')
        tm.commit()
        last = views.last_change(conn, obj._p_oid)
        assert last['note'] == 'made x' and last['time']
        del conn.root()['x']
        tm.commit()
        db.pack()
        with pytest.raises(POSKeyError):
            db.history(obj._p_oid)
        # the page of what the connection still holds has no last change
        assert obj.title == 'gone soon'
        assert views.last_change(conn, obj._p_oid) is None
        with pytest.raises(HTTPNotFound):
            history.revisions(db, obj._p_oid)
    finally:
        tm.abort()
        conn.close()
        db.close()


class NoHistoryStorage(MappingStorage):
    """A storage whose ``history`` is ``BaseStorage``'s, as a storage
    built on it that does not override it: always empty."""

    history = BaseStorage.history


def test_a_storage_whose_history_is_always_empty():
    db = ZODB.DB(NoHistoryStorage())
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    try:
        obj = conn.root()['x'] = Thing()
        tm.commit()
        assert db.history(obj._p_oid, size=1) == ()
        assert views.last_change(conn, obj._p_oid) is None
        assert history.revisions(db, obj._p_oid) == (
            [], False,
            'This storage (tests.unit.test_manage_edges.NoHistoryStorage) '
            'keeps no history of this object',
        )
    finally:
        conn.close()
        db.close()


def test_the_last_transaction_of_a_storage_without_undo():
    """Without an undo log, the probe's time stands alone; without even
    that (the probe knew of no transaction), nothing."""
    from pyramid_zeostore.manage import database

    db = ZODB.DB(None)  # a MappingStorage: no undo log
    try:
        assert database._last(db, None) is None
        found = database._last(db, '2026-12-07T06:00:00+00:00')
        assert found['user'] == found['note'] == ''
        assert found['time'].startswith('2026-12-07')
    finally:
        db.close()


# -- the JSON API's limits, in an app of its own ------------------------------


def test_value_limits_without_the_ready_apps_settings():
    """An app that includes only the object browser has no
    ``zeostore.max_value``: its default applies."""
    import datetime

    from pyramid import testing

    with testing.testConfig():
        request = testing.DummyRequest()
        assert views.max_value(request) == 256 << 10
        assert views.value_error(request, 'x' * (256 << 10)) == (
            413, 'the value is 262146 bytes of JSON, more than 262144 '
                 '(zeostore.max_value)')
        assert views.value_error(request, 'x' * 1000) is None
        assert views.value_error(request, float('inf')) == (
            400, 'numbers must be finite')
        assert views.value_error(request, datetime.date(2026, 1, 2)) is None
