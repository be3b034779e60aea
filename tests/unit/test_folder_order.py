"""Unit tests of ordered folders: Folder.order, set_order, reorder and
the FolderOrder that keeps it, up to 100,000 children in a FileStorage."""

from __future__ import annotations

import collections
import random
import shutil

import pytest
import transaction
import ZODB
import ZODB.FileStorage
from pyramid import testing
from ZODB.POSException import ConflictError
from ZODB.utils import get_pickle_metadata

from pyramid_zeostore.exceptions import FolderKeyError
from pyramid_zeostore.folder import Folder, FolderOrder
from pyramid_zeostore.interfaces import IObjectEvent
from tests.unit.test_folder import Item, fresh_folder, kinds


@pytest.fixture
def events():
    """Record every object event sent through the current registry."""
    config = testing.setUp()
    seen: list = []
    config.add_subscriber(seen.append, IObjectEvent)
    yield seen
    testing.tearDown()


def ordered(*names: str) -> Folder:
    """A folder of Items named ``names``, ordered as given."""
    folder = Folder({name: Item(name) for name in names})
    folder.set_order(names)
    return folder


def positions(folder: Folder) -> list[int]:
    return list(folder._order._names.keys())


def written(storage) -> collections.Counter:
    """The classes of the records the storage's last transaction wrote."""
    tid = storage.lastTransaction()
    txn = next(iter(storage.iterator(tid, tid)))
    return collections.Counter(
        '.'.join(get_pickle_metadata(record.data)) for record in txn)


@pytest.fixture
def file_db(tmp_path):
    database = ZODB.DB(ZODB.FileStorage.FileStorage(str(tmp_path / 'D.fs')))
    yield database
    transaction.abort()
    database.close()


# -- unordered ----------------------------------------------------------------

def test_an_unordered_folder_has_no_order_and_pays_nothing():
    folder = Folder({'b': Item(), 'a': Item()})
    assert folder.order is None and not folder.is_ordered()
    folder['c'] = Item()
    folder.rename('a', 'z')
    del folder['b']
    assert list(folder) == ['c', 'z']
    assert '_order' not in folder.__dict__  # no attribute, no record
    assert '_order' not in folder.__getstate__()


def test_an_unordered_add_writes_three_records(file_db):
    conn = file_db.open()
    folder = conn.root()['f'] = Folder({f'i{i}': Item() for i in range(9)})
    transaction.commit()
    folder.add('new', Item(), send_events=False)
    transaction.commit()
    assert written(file_db.storage) == {
        'tests.unit.test_folder.Item': 1,
        'pyramid_zeostore.folder.FolderTree': 1,  # one bucket: inline
        'BTrees.Length.Length': 1,
    }


# -- set_order and what follows it --------------------------------------------

def test_set_order_orders_iteration_keys_values_items_and_page():
    folder = ordered('c', 'a', 'b')
    assert folder.order == ('c', 'a', 'b') and folder.is_ordered()
    assert list(folder) == ['c', 'a', 'b']
    assert list(folder.keys()) == ['c', 'a', 'b']
    assert [v.title for v in folder.values()] == ['c', 'a', 'b']
    assert [(n, v.title) for n, v in folder.items()] == [
        ('c', 'c'), ('a', 'a'), ('b', 'b')]
    assert [n for n, _ in folder.page()] == ['c', 'a', 'b']
    assert [n for n, _ in folder.page(1, 1)] == ['a']
    assert [n for n, _ in folder.page(after='c')] == ['a', 'b']
    assert [n for n, _ in folder.page(1, after='c')] == ['b']
    assert folder.page(after='b') == [] and folder.page(3) == []


def test_ordered_values_and_items_are_lazy_sequences():
    folder = ordered('c', 'a', 'b')
    values, items = folder.values(), folder.items()
    assert not isinstance(values, list) and not isinstance(items, list)
    assert len(values) == len(items) == 3
    assert values[0] is folder['c'] and values[-1] is folder['b']
    assert [v.title for v in values[1:]] == ['a', 'b']
    assert items[1] == ('a', folder['a'])
    assert [n for n, _ in items[:2]] == ['c', 'a']


def test_ordered_keys_take_names_of_children_as_bounds():
    folder = ordered('e', 'd', 'c', 'b', 'a')
    assert list(folder.keys('d', 'b')) == ['d', 'c', 'b']
    assert list(folder.keys('d', 'b', excludemin=True,
                            excludemax=True)) == ['c']
    assert list(folder.keys(min='b')) == ['b', 'a']
    assert [v.title for v in folder.values(max='d')] == ['e', 'd']
    assert [n for n, _ in folder.items('c', 'c')] == ['c']
    with pytest.raises(FolderKeyError, match='not in .* takes the names'):
        folder.keys('zz')
    with pytest.raises(FolderKeyError):
        folder.page(after='zz')  # positions, not names, are compared


def test_set_order_errors_name_the_problem_and_change_nothing():
    folder = ordered('a', 'b', 'c')
    with pytest.raises(ValueError, match=r'not in <.*>: "x", "y"$'):
        folder.set_order(['a', 'x', 'b', 'c', 'y'])
    with pytest.raises(ValueError, match=r'not in .*: 3$'):
        folder.set_order(['a', 'b', 'c', 3])
    with pytest.raises(ValueError, match='must not repeat: "a"$'):
        folder.set_order(['a', 'a', 'b', 'c'])
    with pytest.raises(ValueError,
                       match='every child must be listed; 2 missing: '
                             '"b", "c"$'):
        folder.set_order(['a'])
    with pytest.raises(TypeError, match='not a string: "abc"'):
        folder.set_order('abc')
    many = Folder({f'n{i}': Item() for i in range(8)})
    with pytest.raises(ValueError, match='8 missing: "n0", .*, "n4" and '
                                         '3 more$'):
        many.set_order([])
    assert folder.order == ('a', 'b', 'c') and many.order is None


def test_set_order_takes_any_iterable_and_either_spelling():
    folder = Folder({'caf\u00e9': Item(), 'b': Item()})
    folder.set_order(iter(['cafe\u0301', 'b']))  # decomposed é
    assert folder.order == ('caf\u00e9', 'b')
    folder.set_order(name for name in ('b', 'caf\u00e9'))
    assert folder.order == ('b', 'caf\u00e9')


def test_unset_order_in_every_spelling():
    folder = ordered('b', 'a')
    folder.unset_order()
    assert folder.order is None and list(folder) == ['a', 'b']
    folder.unset_order()  # already unordered: nothing to do
    folder.order = ['b', 'a']
    assert folder.order == ('b', 'a')
    del folder.order
    assert folder.order is None
    folder.set_order(['b', 'a'])
    folder.set_order(None)
    assert folder.order is None and '_order' not in folder.__dict__


def test_set_order_again_reuses_the_order_record():
    folder = ordered('a', 'b', 'c')
    record = folder._order
    folder.set_order(['c', 'b', 'a'])
    assert folder._order is record and folder.order == ('c', 'b', 'a')
    assert positions(folder) == [0, FolderOrder.GAP, 2 * FolderOrder.GAP]


def test_an_empty_folder_can_be_ordered():
    folder = Folder()
    folder.set_order([])
    assert folder.order == () and folder.is_ordered()
    folder['b'] = Item()
    folder['a'] = Item()
    assert folder.order == ('b', 'a')
    assert positions(folder)[0] == 0


# -- writing keeps the order --------------------------------------------------

def test_add_goes_last_remove_leaves_the_order():
    folder = ordered('c', 'a')
    folder['b'] = Item()
    folder.add_next(Item())
    assert folder.order == ('c', 'a', 'b', '0')
    del folder['a']
    assert folder.pop('c').__name__ is None
    assert folder.order == ('b', '0') and list(folder) == ['b', '0']
    step = positions(folder)[1] - positions(folder)[0]
    assert FolderOrder.GAP // 2 <= step <= FolderOrder.GAP


def test_rename_keeps_the_place(events):
    folder = ordered('c', 'a', 'b')
    moved = folder['a']
    folder.rename('a', 'z')
    assert folder.order == ('c', 'z', 'b') and folder['z'] is moved
    assert [e.moving for e in events] == [folder] * 4
    # moving to the same folder under a new name is a rename
    folder.move('z', folder, 'y')
    assert folder.order == ('c', 'y', 'b')


def test_replace_keeps_the_place():
    folder = ordered('c', 'a', 'b')
    new = Item('new')
    old = folder.replace('a', new)
    assert old.title == 'a' and folder['a'] is new
    assert folder.order == ('c', 'a', 'b')
    folder.replace('d', Item())  # not there: an add, last
    assert folder.order == ('c', 'a', 'b', 'd')


def test_move_between_ordered_and_unordered_folders():
    source, target = ordered('c', 'a', 'b'), ordered('z', 'y')
    plain = Folder({'m': Item()})
    source.move('a', target)
    assert source.order == ('c', 'b') and target.order == ('z', 'y', 'a')
    target.move('z', plain)
    assert target.order == ('y', 'a') and list(plain) == ['m', 'z']
    plain.move('m', source, 'n')
    assert source.order == ('c', 'b', 'n')


def test_copy_keeps_the_order_and_goes_last():
    root = ordered('x')
    sub = root['sub'] = ordered('c', 'a', 'b')
    copy = root.copy('sub', root, 'copy')
    assert root.order == ('x', 'sub', 'copy')
    assert copy.order == ('c', 'a', 'b')
    assert copy._order is not sub._order
    assert copy._order._names is not sub._order._names
    copy['d'] = Item()
    assert sub.order == ('c', 'a', 'b') and copy.order[-1] == 'd'


def test_clear_leaves_an_empty_ordered_folder():
    folder = ordered('c', 'a', 'b')
    folder.clear()
    assert folder.order == () and len(folder) == 0


def test_subtree_events_follow_each_folders_order(events):
    top = ordered('z', 'a')
    sub = top['m'] = ordered()
    sub['y'] = Item()
    sub['b'] = Item()
    parent = Folder()
    del events[:]
    parent.add('top', top)
    assert kinds(events)[:6] == [('ObjectWillBeAdded', n) for n in
                                 ['top', 'z', 'a', 'm', 'y', 'b']]
    del events[:]
    parent.remove('top')
    assert kinds(events)[:6] == [('ObjectWillBeRemoved', n) for n in
                                 ['z', 'a', 'y', 'b', 'm', 'top']]


# -- reorder ------------------------------------------------------------------

def test_reorder_to_the_end_and_before_a_name():
    folder = ordered('a', 'b', 'c', 'd', 'e')
    folder.reorder(['b'])
    assert folder.order == ('a', 'c', 'd', 'e', 'b')
    folder.reorder(['e', 'a'], 'c')
    assert folder.order == ('e', 'a', 'c', 'd', 'b')
    folder.reorder(['d'], 'e')  # to the front
    assert folder.order == ('d', 'e', 'a', 'c', 'b')
    folder.reorder(('b', 'c'), before=None)
    assert folder.order == ('d', 'e', 'a', 'b', 'c')
    folder.reorder([])
    assert folder.order == ('d', 'e', 'a', 'b', 'c')


def test_reorder_before_one_of_the_names_moved():
    """Substance D's semantics: they go where ``before`` was."""
    folder = ordered('a', 'b', 'c', 'd', 'e')
    folder.reorder(['d', 'b'], 'b')
    assert folder.order == ('a', 'd', 'b', 'c', 'e')
    folder.reorder(['e', 'c'], 'c')  # nothing after 'c' stays: the end
    assert folder.order == ('a', 'd', 'b', 'e', 'c')


def test_reorder_errors_change_nothing():
    folder = ordered('a', 'b', 'c')
    with pytest.raises(ValueError, match='is unordered: set_order'):
        Folder({'a': Item()}).reorder(['a'])
    with pytest.raises(FolderKeyError, match='"x" is not in'):
        folder.reorder(['a', 'x'])
    with pytest.raises(FolderKeyError, match='before="x" is not in'):
        folder.reorder(['a'], 'x')
    with pytest.raises(ValueError, match='must not repeat: "a"'):
        folder.reorder(['a', 'b', 'a'])
    with pytest.raises(TypeError, match='not a string'):
        folder.reorder('ab')
    assert folder.order == ('a', 'b', 'c')


def test_reorder_renumbers_when_a_gap_is_used_up():
    """Moving names in front of one name halves the gap before it each
    time; once no integer is left, every position is renumbered."""
    names = [f'n{i}' for i in range(40)]
    folder = ordered('first', *names, 'last')
    model = list(folder.order)
    grid = [i * FolderOrder.GAP for i in range(42)]
    renumbered = []
    for step, name in enumerate(names):  # each goes just before 'last'
        folder.reorder([name], 'last')
        model.remove(name)
        model.insert(model.index('last'), name)
        assert folder.order == tuple(model)
        if positions(folder) == grid:
            renumbered.append(step)
    # the gap of 2**32 before 'last' is halved 32 times, then renumbered
    assert renumbered == [32]


def test_reorder_agrees_with_a_list_model(monkeypatch):
    """Random reorders, adds and removes against a list, with gaps small
    enough to renumber often."""
    monkeypatch.setattr(FolderOrder, 'GAP', 8)
    rng = random.Random(1)
    folder = ordered(*[f'n{i}' for i in range(20)])
    model = list(folder.order)
    for step in range(600):
        action = rng.random()
        if action < 0.1:
            folder[f'new{step}'] = Item()
            model.append(f'new{step}')
        elif action < 0.2 and len(model) > 5:
            name = rng.choice(model)
            del folder[name]
            model.remove(name)
        else:
            moved = rng.sample(model, rng.randint(1, 4))
            before = rng.choice(model + [None])
            folder.reorder(moved, before)
            if before is not None:
                at = model.index(before)
                later = [n for n in model[at:] if n not in moved]
                before = later[0] if later else None
            model = [n for n in model if n not in moved]
            at = len(model) if before is None else model.index(before)
            model[at:at] = moved
        assert folder.order == tuple(model), step
        assert len(folder._order._positions) == len(model)


def test_positions_stay_within_64_bits():
    order = FolderOrder(['a', 'b'])
    order.insert('top', 2 ** 63 - 10)
    order.append('next')  # would overflow: renumbered first
    assert list(order) == ['a', 'b', 'top', 'next']
    assert list(order._names.keys()) == [0, 2 ** 32, 2 ** 33, 3 * 2 ** 32]
    order = FolderOrder(['a'])
    order.discard('a')
    order.insert('bottom', -(2 ** 63) + 10)
    order.insert('b', 0)
    order.move_before(['b'], 'bottom')  # no room in front: renumbered
    assert list(order) == ['b', 'bottom']
    assert list(order._names.keys()) == [0, 2 ** 32]
    assert order.position('bottom') == 2 ** 32


# -- persistence and concurrency ----------------------------------------------

def test_order_is_stored_and_adds_do_not_write_the_folder(file_db):
    conn = file_db.open()
    folder = conn.root()['f'] = Folder({n: Item(n) for n in 'abc'})
    folder.set_order(['c', 'a', 'b'])
    transaction.commit()
    folder['d'] = Item('d')
    assert folder._p_changed is False and folder._order._p_changed is False
    transaction.commit()
    assert written(file_db.storage) == {
        'tests.unit.test_folder.Item': 1,
        'pyramid_zeostore.folder.FolderTree': 1,
        'BTrees.Length.Length': 1,
        'BTrees.LOBTree.LOBTree': 1,
        'BTrees.OLBTree.OLBTree': 1,
    }
    folder.reorder(['d'], 'c')
    folder.rename('a', 'z')
    del folder['b']
    assert folder._p_changed is False
    transaction.commit()
    other = file_db.open(transaction_manager=transaction.TransactionManager())
    assert other.root()['f'].order == ('d', 'c', 'z')
    other.close()


def test_concurrent_appends_to_an_ordered_folder_merge(file_db):
    """Each picks its own position after the last: ZODB resolves the
    conflict on the position buckets as it does for the children's."""
    tm1 = transaction.TransactionManager()
    tm2 = transaction.TransactionManager()
    conn1 = file_db.open(transaction_manager=tm1)
    conn1.root()['f'] = Folder({n: Item(n) for n in 'abc'})
    conn1.root()['f'].set_order(['c', 'b', 'a'])
    tm1.commit()
    conn2 = file_db.open(transaction_manager=tm2)
    conn1.root()['f']['x'] = Item()
    conn2.root()['f']['y'] = Item()
    tm1.commit()
    tm2.commit()  # resolved, no ConflictError
    tm1.begin()
    order = conn1.root()['f'].order
    assert order[:3] == ('c', 'b', 'a') and set(order[3:]) == {'x', 'y'}
    assert len(conn1.root()['f']) == 5


def test_concurrent_add_next_conflicts_once_then_takes_the_next(file_db):
    tm1 = transaction.TransactionManager()
    tm2 = transaction.TransactionManager()
    conn1 = file_db.open(transaction_manager=tm1)
    conn1.root()['f'] = Folder()
    conn1.root()['f'].add_next(Item())  # makes the counter
    tm1.commit()
    conn2 = file_db.open(transaction_manager=tm2)
    assert conn1.root()['f'].add_next(Item()) == '1'
    assert conn2.root()['f'].add_next(Item()) == '1'
    tm1.commit()
    with pytest.raises(ConflictError):  # both took '1'
        tm2.commit()
    tm2.abort()
    assert conn2.root()['f'].add_next(Item()) == '2'  # the retry
    tm2.commit()
    tm1.begin()
    assert list(conn1.root()['f']) == ['0', '1', '2']


# -- 100,000 children ---------------------------------------------------------

N_BIG = 100_000
BATCH = 10_000


@pytest.fixture(scope='module')
def big_ordered(tmp_path_factory):
    """A FileStorage holding an ordered Folder of 100,000 Items (added in
    batches, each committed), the last moved to the front; its path."""
    path = str(tmp_path_factory.mktemp('ordered') / 'Data.fs')
    database = ZODB.DB(ZODB.FileStorage.FileStorage(path))
    tm = transaction.TransactionManager()
    conn = database.open(transaction_manager=tm)
    folder = conn.root()['folder'] = Folder()
    folder.set_order([])
    tm.commit()
    for start in range(0, N_BIG, BATCH):
        for i in range(start, start + BATCH):
            folder.add(f'item-{i:06d}', Item(str(i)), send_events=False)
        tm.commit()
    folder.reorder([f'item-{N_BIG - 1:06d}'], 'item-000000')
    tm.commit()
    database.close()
    return path


@pytest.fixture
def big_conn(big_ordered):
    """A fresh DB and connection on the big folder (empty cache)."""
    with fresh_folder(big_ordered) as found:
        yield found


def expected_names() -> list[str]:
    return [f'item-{N_BIG - 1:06d}'] + [f'item-{i:06d}'
                                        for i in range(N_BIG - 1)]


def test_one_add_to_100000_ordered_children_writes_a_few_records(
        big_ordered, tmp_path, record_property):
    copy = str(tmp_path / 'Data.fs')
    shutil.copy(big_ordered, copy)
    shutil.copy(big_ordered + '.index', copy + '.index')
    database = ZODB.DB(ZODB.FileStorage.FileStorage(copy))
    try:
        tm = transaction.TransactionManager()
        conn = database.open(transaction_manager=tm)
        folder = conn.root()['folder']
        counts = []
        records: collections.Counter = collections.Counter()
        for i in range(20):
            folder.add(f'new-{i:02d}', Item(), send_events=False)
            tm.commit()
            records.update(written(database.storage))
            counts.append(sum(written(database.storage).values()))
        # the child, a bucket of the children's tree, the Length and a
        # bucket of each of the order's trees; a bucket that splits
        # adds its new sibling and its parent
        assert sorted(counts)[len(counts) // 2] == 5, counts
        assert max(counts) <= 11, counts
        assert records['tests.unit.test_folder.Item'] == 20
        assert records['pyramid_zeostore.folder.Folder'] == 0
        assert records['pyramid_zeostore.folder.FolderOrder'] == 0
        assert folder.order[-20:] == tuple(f'new-{i:02d}' for i in range(20))
        folder.remove('item-050000', send_events=False)
        tm.commit()
        removed = sum(written(database.storage).values())
        folder.rename('item-050001', 'renamed', send_events=False)
        tm.commit()
        assert folder.order[50_001] == 'renamed'  # item-050001's place
        renamed = sum(written(database.storage).values())
        folder.reorder(['item-070000'], 'item-000010')
        tm.commit()
        reordered = sum(written(database.storage).values())
        assert removed <= 7 and renamed <= 14 and reordered <= 6
    finally:
        database.close()
    record_property('records_written_by_one_ordered_add', counts)
    print(f'\none add to {N_BIG} ordered children writes {counts} records;'
          f' remove {removed}, rename {renamed}, reorder {reordered}')


def test_iterating_100000_ordered_children_loads_o_n_records(
        big_conn, record_property):
    conn, folder = big_conn
    conn.getTransferCounts(clear=True)
    names = list(folder)
    names_loads, _ = conn.getTransferCounts(clear=True)
    assert names == expected_names()
    children = list(folder.values())
    items_loads, _ = conn.getTransferCounts(clear=True)
    assert len(children) == N_BIG
    assert all(child._p_changed is None for child in children)  # ghosts
    # the order's buckets (some 30 names each), then the children's tree
    assert names_loads <= N_BIG // 20
    assert items_loads <= N_BIG // 10
    record_property('records_loaded_iterating_names', names_loads)
    record_property('records_loaded_iterating_values', items_loads)
    print(f'\niterating {N_BIG} ordered names loads {names_loads} records, '
          f'their values {items_loads} more (no child)')


def test_paging_100000_ordered_children(big_conn, record_property):
    conn, folder = big_conn
    conn.getTransferCounts(clear=True)
    page = folder.page(size=50, after='item-070000')
    keyset, _ = conn.getTransferCounts(clear=True)
    assert [n for n, _ in page] == [f'item-{i:06d}'
                                    for i in range(70_001, 70_051)]
    assert all(obj._p_changed is None for _, obj in page)
    assert keyset <= 25  # two paths down and the buckets of the page
    page = folder.page(50_000, 50)
    offset, _ = conn.getTransferCounts(clear=True)
    assert [n for n, _ in page] == expected_names()[50_000:50_050]
    assert page[0][0] == 'item-049999'
    record_property('records_loaded_by_ordered_keyset_page', keyset)
    print(f'\nordered page(after=...) of {N_BIG}: {keyset} records; '
          f'page(50000, 50): {offset}')
