"""The object browser's history, undo log and database helpers, without
a server: records written by ZODB itself (MappingStorage, FileStorage in
a temporary folder) and pickles made by hand, read back by the
restricted reader of :mod:`pyramid_zeostore.manage.history`.

Checked: no class of a record is imported or run (not even a harmful
global), references become placeholders with their oid and class name,
the usual pickle forms (protocols 0 to 5, subclasses of list and dict,
sets, dates, decimals, bytearrays) read, what is unsafe fails cleanly;
the comparison of two revisions; the bounds of a history page; notes
and undo errors as the pages tell them; the pack form's days.
"""

from __future__ import annotations

import collections
import copyreg
import datetime
import decimal
import io
import pickle

import pytest
import transaction
import ZODB
from persistent import Persistent
from persistent.mapping import PersistentMapping
from persistent.wref import WeakRef
from ZODB.FileStorage import FileStorage
from ZODB.MappingStorage import MappingStorage
from ZODB.POSException import MultipleUndoErrors, UndoError

from pyramid_zeostore.manage import database, history, render

ARMED = {'on': False}


def tripwire(what):
    if ARMED['on']:
        raise AssertionError(f'the reader ran {what}')


@pytest.fixture
def armed():
    ARMED['on'] = True
    yield
    ARMED['on'] = False


class Tripwire(Persistent):
    """A persistent app class none of whose code may run when read."""

    def __new__(cls, *args, **kw):
        tripwire('__new__')
        return super().__new__(cls)

    def __setstate__(self, state):
        tripwire('__setstate__')
        super().__setstate__(state)

    def __eq__(self, other):
        tripwire('__eq__')
        return self is other

    __hash__ = Persistent.__hash__


class Plain:
    """A plain app class inside a record."""

    def __init__(self, n):
        self.n = n

    def __new__(cls, *args, **kw):
        tripwire('Plain.__new__')
        return super().__new__(cls)

    def __setstate__(self, state):
        tripwire('Plain.__setstate__')
        self.__dict__.update(state)

    def __eq__(self, other):
        tripwire('Plain.__eq__')
        return self is other

    __hash__ = object.__hash__


class Listy(list):
    pass


class Dicty(dict):
    pass


def boom(name):
    """What a harmful record would call."""
    open(name, 'w').close()


class Harmful:
    """Pickles as a call of :func:`boom`."""

    def __reduce__(self):
        return (boom, ('HARMFUL',))


#: ``os.system('touch HARMFUL')`` as protocol 0 pickles it
SYSTEM = b"cos\nsystem\n(S'touch HARMFUL'\ntR."


def record(meta, state, protocol=3) -> bytes:
    """A record as ZODB writes one: two pickles, one after the other."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol)
    pickler.dump(meta)
    pickler.dump(state)
    return buf.getvalue()


@pytest.fixture
def db():
    db = ZODB.DB(MappingStorage())
    yield db
    db.close()


def stored(db, obj) -> bytes:
    """``obj`` committed under the root, and its record."""
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    try:
        conn.root()['x'] = obj
        tm.commit()
        data, _ = db.storage.load(obj._p_oid)
        return data
    finally:
        conn.close()


# -- the reader ---------------------------------------------------------------


def test_a_record_reads_without_running_its_class(db, armed, tmp_path):
    ARMED['on'] = False
    obj = Tripwire()
    obj.title = 'Hello'
    obj.plain = Plain(3)
    obj.when = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc)
    obj.amount = decimal.Decimal('1.50')
    obj.tags = {'a', 'b'}
    obj.child = PersistentMapping(k=1)
    data = stored(db, obj)
    ARMED['on'] = True
    name, attrs = history.read_record(data)
    assert name == 'tests.unit.test_manage_history.Tripwire'
    assert attrs['title'] == 'Hello'
    assert attrs['when'] == obj.when and attrs['amount'] == obj.amount
    assert attrs['tags'] == {'a', 'b'}
    plain = attrs['plain']
    assert isinstance(plain, history.Stored)
    assert render.type_name(plain) == 'tests.unit.test_manage_history.Plain'
    assert render.show(plain).text == (
        '<tests.unit.test_manage_history.Plain>')
    child = attrs['child']
    assert isinstance(child, history.Reference)
    assert child._p_oid == obj.child._p_oid and child._p_jar is None
    shown = render.show(child)
    assert (shown.kind, shown.text) == (
        'link', 'persistent.mapping.PersistentMapping')
    assert shown.oid == render.oid_hex(obj.child)


def test_a_harmful_global_is_never_called(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for protocol in range(6):
        data = record(Tripwire, {'evil': Harmful()}, protocol)
        name, attrs = history.read_record(data)
        assert name == 'tests.unit.test_manage_history.Tripwire'
        assert render.type_name(attrs['evil']) == (
            'tests.unit.test_manage_history.boom')
        assert not (tmp_path / 'HARMFUL').exists()
    name, evil = history.read_record(pickle.dumps(Tripwire) + SYSTEM)
    assert render.type_name(evil['(state)']) == 'os.system'
    assert not (tmp_path / 'HARMFUL').exists()
    # builtins that could run code or eat memory are stand-ins too
    for value in (eval, getattr, bytes):
        data = record(Tripwire, {'v': value})
        _, attrs = history.read_record(data)
        assert isinstance(attrs['v'], type) and issubclass(
            attrs['v'], history.Stored)


@pytest.mark.parametrize('protocol', range(6))
def test_the_usual_forms_read_in_every_protocol(protocol, armed):
    ARMED['on'] = False
    state = {
        'listy': Listy([1, 2]), 'dicty': Dicty(a=1), 'plain': Plain(1),
        'frozen': frozenset([1]), 'tags': {'x'}, 'raw': bytearray(b'\x00'),
        'blob': b'\x00\xff', 'ordered': collections.OrderedDict(a=1),
        'day': datetime.date(2024, 1, 2), 'span': datetime.timedelta(3),
        'z': 1 + 2j, 'nested': {'k': [1, (2, 3)]},
    }
    data = record(Tripwire, state, protocol)
    ARMED['on'] = True
    _, attrs = history.read_record(data)
    for key in ('frozen', 'tags', 'raw', 'blob', 'ordered', 'day', 'span',
                'z', 'nested'):
        assert attrs[key] == state[key], key
    # protocols 0 and 1 give the items to copyreg's reconstructor
    assert '[1, 2]' in repr(attrs['listy']._stored)
    assert render.type_name(attrs['listy']) == (
        'tests.unit.test_manage_history.Listy')
    assert "'a', 1" in repr(attrs['dicty']._stored) or (
        "{'a': 1}" in repr(attrs['dicty']._stored))
    assert attrs['plain']._stored[1] == {'n': 1}


def test_unsafe_uses_of_safe_names_fail_cleanly():
    reader = history.RecordReader(io.BytesIO(b''))
    with pytest.raises(pickle.UnpicklingError):
        reader.find_class('_codecs', 'encode')('x', 'zlib_codec')
    with pytest.raises(pickle.UnpicklingError):
        reader.find_class('builtins', 'bytearray')(10 ** 12)
    with pytest.raises(pickle.UnpicklingError):
        reader.find_class('copyreg', '_reconstructor')(dict, object, None)
    with pytest.raises(pickle.UnpicklingError):
        reader.persistent_load(['x', ('y',)])
    with pytest.raises(pickle.UnpicklingError):
        reader.persistent_load((b'short', None))
    # protocol 0's reconstructor makes a stand-in of the stand-in class
    cls = reader.find_class('app.things', 'Thing')
    made = reader.find_class('copy_reg', '_reconstructor')(cls, object, None)
    assert type(made) is cls


def test_references_of_every_form(db):
    target = PersistentMapping()
    holder = PersistentMapping(
        strong=target, weak=WeakRef(target), plain_oid=None)
    data = stored(db, holder)
    _, attrs = history.read_record(data)
    inner = attrs['data']
    assert isinstance(inner['strong'], history.Reference)
    assert render.type_name(inner['weak']) == 'persistent.wref.WeakRef'
    assert inner['weak']._p_oid == target._p_oid
    reader = history.RecordReader(io.BytesIO(b''))
    oid = b'\x00' * 7 + b'\x05'
    bare = reader.persistent_load(oid)
    assert type(bare) is history.Reference and bare._p_oid == oid
    old = reader.persistent_load((oid, ('app.things', 'Thing')))
    assert render.type_name(old) == 'app.things.Thing'
    other = reader.persistent_load(['m', ('other', oid, None)])
    assert isinstance(other, history.OtherDatabaseReference)
    assert reader.persistent_load(['n', ('other', oid)]) == other


def test_stand_in_names_are_checked_and_bounded(monkeypatch):
    assert history.stand_in(history.Stored, 'os', 'x y') is history.Stored
    assert history.stand_in(history.Stored, '', 'X') is history.Stored
    one = history.stand_in(history.Stored, 'app.mod', 'Outer.Inner')
    assert one is history.stand_in(history.Stored, 'app.mod', 'Outer.Inner')
    assert render.type_name(one()) == 'app.mod.Outer.Inner'
    monkeypatch.setattr(history, '_classes', {})
    monkeypatch.setattr(history, 'MAX_CLASSES', 1)
    history.stand_in(history.Stored, 'a', 'B')
    assert history.stand_in(history.Stored, 'a', 'C') is history.Stored


def test_a_state_that_is_no_dict():
    assert history.stored_attributes(None) == {}
    assert history.stored_attributes(({'a': 1}, {'b': 2})) == {
        'a': 1, 'b': 2}
    assert history.stored_attributes((1, 2)) == {'(state)': (1, 2)}
    _, attrs = history.read_record(record(Tripwire, [1, 2]))
    assert attrs == {'(state)': [1, 2]}
    with pytest.raises(pickle.UnpicklingError):
        history.read_record(b'not a pickle')


# -- comparing ----------------------------------------------------------------


def test_diff_names_added_removed_and_changed():
    old = {'a': 1, 'b': [1, 2], 'c': 'x', 'd': 1}
    new = {'a': 1, 'b': [1, 3], 'e': None, 'd': 1.0}
    assert history.diff(old, new) == {
        'added': ['e'], 'removed': ['c'], 'changed': ['b', 'd']}
    shown = history.shown_diff(old, new)
    assert [n for n, _ in shown['added']] == ['e']
    assert [(n, o.text) for n, o in shown['removed']] == [('c', 'x')]
    assert [n for n, _, _ in shown['changed']] == ['b', 'd']
    assert shown['unchanged'] == 1


def test_same_for_stand_ins_references_and_odd_values():
    reader = history.RecordReader(io.BytesIO(b''))
    cls = reader.find_class('app', 'Thing')
    a, b = cls(1), cls(1)
    assert history.same(a, b) and not history.same(a, cls(2))
    oid = b'\x00' * 7 + b'\x01'
    assert history.same(reader.persistent_load(oid),
                        reader.persistent_load(oid))
    loop = []
    loop.append(loop)
    other = []
    other.append(other)
    assert history.same(loop, other) is False  # RecursionError: changed


# -- a history page's rows ----------------------------------------------------


@pytest.fixture
def filedb(tmp_path):
    db = ZODB.DB(FileStorage(str(tmp_path / 'Data.fs')))
    yield db
    db.close()


def revisions_of(db, count):
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    try:
        obj = conn.root()['x'] = PersistentMapping(n=0)
        tm.get().note('n=0')
        tm.commit()
        for i in range(1, count):
            obj['n'] = i
            obj[f'k{i}'] = i
            tm.get().note(f'n={i}')
            tm.commit()
        return obj._p_oid
    finally:
        conn.close()


def test_revisions_newest_first_with_their_changes(filedb):
    oid = revisions_of(filedb, 3)
    rows, more, why = history.revisions(filedb, oid)
    assert (more, why) == (False, None)
    assert [r['note'] for r in rows] == ['n=2', 'n=1', 'n=0']
    assert rows[0]['class'] == 'persistent.mapping.PersistentMapping'
    assert rows[0]['attributes']['data'] == {'n': 2, 'k1': 1, 'k2': 2}
    assert rows[0]['changes'] == {'added': [], 'removed': [],
                                  'changed': ['data']}
    assert rows[-1]['changes'] == 'created'


def test_revisions_are_bounded(filedb, monkeypatch):
    oid = revisions_of(filedb, 6)
    monkeypatch.setattr(history, 'MAX_REVISIONS', 3)
    rows, more, _ = history.revisions(filedb, oid)
    assert len(rows) == 3 and more
    assert rows[-1].get('changes') is None  # its predecessor not listed
    monkeypatch.setattr(history, 'MAX_LOADED', 1)
    rows, _, _ = history.revisions(filedb, oid)
    assert 'attributes' in rows[0]
    assert [r['error'] for r in rows[1:]] == [
        'not read: this page read enough records'] * 2


def test_a_storage_without_history_says_so(filedb):
    class NoHistoryStorage(MappingStorage):
        def history(self, oid, size=1):
            raise NotImplementedError

    class DB:
        storage = NoHistoryStorage()

    rows, more, why = history.revisions(DB(), b'\x00' * 8)
    assert rows == [] and not more
    assert 'keeps no history: NotImplementedError' in why
    assert 'NoHistoryStorage' in why


def test_an_unreadable_revision_is_told_not_raised(filedb, monkeypatch):
    oid = revisions_of(filedb, 2)

    def broken(data):
        raise pickle.UnpicklingError('bad record')

    monkeypatch.setattr(history, 'read_record', broken)
    rows, _, _ = history.revisions(filedb, oid)
    assert rows[0]['error'] == 'unreadable: UnpicklingError: bad record'
    assert 'changes' not in rows[0]


# -- notes, undo errors, pack days --------------------------------------------


def test_paths_and_summaries_of_notes():
    assert history.paths_in('/docs/@@manage-add\nadded item /docs/x') == [
        '/docs/x']
    assert history.paths_in('deleted /a, /b') == ['/a', '/b']
    assert history.paths_in('renamed /a to /b') == ['/a', '/b']
    assert history.paths_in('undid "deleted /a"') == ['/a']
    assert history.paths_in('set n of oid 00ff, see a/b') == []
    assert history.summary('/a/@@manage-delete\ndeleted /a/x') == (
        'deleted /a/x')
    assert history.summary('one\n\ntwo') == 'one; two'
    assert history.summary('/@@manage-undo') == '/@@manage-undo'


def test_why_an_undo_failed_is_said_once():
    oid = b'\x00' * 7 + b'\x68'
    one = UndoError('Some data were modified by a later transaction', oid)
    assert history.why(MultipleUndoErrors([(oid, one)])) == (
        'Some data were modified by a later transaction '
        '(oid 0000000000000068)')
    assert history.why(UndoError('no undo log')) == 'no undo log'


@pytest.mark.parametrize('text,days', [('0', 0.0), (' 1.5 ', 1.5),
                                       ('3650', 3650.0)])
def test_pack_days_accepted(text, days):
    assert database.parse_days(text) == days


@pytest.mark.parametrize('text', ['', '-1', '3651', 'nan', 'inf', 'x'])
def test_pack_days_refused(text):
    with pytest.raises(ValueError):
        database.parse_days(text)


def test_copyreg_is_not_what_a_record_gets():
    reader = history.RecordReader(io.BytesIO(b''))
    assert reader.find_class('copyreg', '_reconstructor') is not (
        copyreg._reconstructor)
