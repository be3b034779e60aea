"""Unit tests of pyramid_zeostore.folder and pyramid_zeostore.events."""

from __future__ import annotations

import contextlib
import time

import pytest
import transaction
import ZODB
import ZODB.FileStorage
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from persistent.list import PersistentList
from pyramid import testing
from pyramid.registry import Registry
from pyramid.threadlocal import get_current_registry
from ZODB.blob import Blob
from zope.interface import Interface, implementer
from zope.interface.interfaces import IObjectEvent as IZopeObjectEvent
from zope.interface.registry import Components
from zope.interface.verify import verifyClass, verifyObject

from pyramid_zeostore.events import (
    ObjectAdded,
    ObjectEvent,
    ObjectRemoved,
    ObjectWillBeAdded,
    ObjectWillBeRemoved,
)
from pyramid_zeostore.exceptions import FolderKeyError
from pyramid_zeostore.folder import (
    MAX_NAME_LENGTH,
    Folder,
    FolderTree,
    InvalidName,
)
from pyramid_zeostore.interfaces import (
    IFolder,
    IObjectAdded,
    IObjectEvent,
    IObjectRemoved,
    IObjectWillBeAdded,
    IObjectWillBeRemoved,
)


class Item(Persistent):
    """A persistent content object (module level, so ZODB can load it)."""

    __name__ = None
    __parent__ = None

    def __init__(self, title: str = '') -> None:
        self.title = title


class Plain:
    """A non-persistent content object."""

    def __init__(self, tags=None) -> None:
        self.tags = tags if tags is not None else []


class Holder:
    """Non-persistent container of a persistent child that points back."""

    def __init__(self) -> None:
        self.child = Item('inner')
        self.child.__parent__ = self


@pytest.fixture
def events():
    """Record every object event sent through the current registry."""
    config = testing.setUp()
    seen: list = []
    config.add_subscriber(seen.append, IObjectEvent)
    yield seen
    testing.tearDown()


@pytest.fixture
def db():
    database = ZODB.DB(None)
    yield database
    transaction.abort()
    database.close()


def kinds(seen) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.name) for e in seen]


def tree() -> Folder:
    """root/{a: Item, sub: Folder/{x: Item, deep: Folder/{y: Item}}, z}"""
    root = Folder()
    root['a'] = Item('a')
    sub = root['sub'] = Folder()
    sub['x'] = Item('x')
    deep = sub['deep'] = Folder()
    deep['y'] = Item('y')
    root['z'] = Item('z')
    return root


# -- interfaces --------------------------------------------------------------

def test_folder_implements_ifolder():
    assert verifyClass(IFolder, Folder)
    assert verifyObject(IFolder, Folder())


@pytest.mark.parametrize('cls, iface', [
    (ObjectEvent, IObjectEvent),
    (ObjectWillBeAdded, IObjectWillBeAdded),
    (ObjectAdded, IObjectAdded),
    (ObjectWillBeRemoved, IObjectWillBeRemoved),
    (ObjectRemoved, IObjectRemoved),
])
def test_events_implement_their_interfaces(cls, iface):
    assert verifyClass(iface, cls)
    event = cls(Item(), Folder(), 'n')
    assert verifyObject(iface, event)
    assert IObjectEvent.providedBy(event)
    assert IZopeObjectEvent.providedBy(event)


def test_event_attributes_and_repr():
    obj, parent, other = Item(), Folder(), Folder()
    event = ObjectAdded(obj, parent, 'n')
    assert (event.object, event.parent, event.name) == (obj, parent, 'n')
    assert event.top is obj
    assert not event.moving
    assert event.old_parent is event.new_parent is event.copied_from is None
    assert repr(event) == f"<ObjectAdded 'n' in {parent!r}>"
    top = Folder()
    moved = ObjectRemoved(obj, parent, 'n', top=top, old_parent=parent,
                          old_name='t', new_parent=other, new_name='u')
    assert moved.top is top and moved.moving
    assert (moved.old_name, moved.new_parent, moved.new_name) == (
        't', other, 'u')
    assert repr(moved).endswith(' (moving)>')


def test_event_moving_is_the_other_folder():
    obj, source, target = Item(), Folder(), Folder()
    where = {'old_parent': source, 'old_name': 'a', 'new_parent': target,
             'new_name': 'b'}
    for cls in (ObjectWillBeRemoved, ObjectRemoved):
        assert cls(obj, source, 'a', **where).moving is target
    for cls in (ObjectWillBeAdded, ObjectAdded, ObjectEvent):
        assert cls(obj, target, 'b', **where).moving is source
    explicit = ObjectRemoved(obj, source, 'a', moving=target)
    assert explicit.moving is target and explicit.old_parent is None
    assert repr(explicit).endswith(' (moving)>')
    copied = ObjectAdded(obj, target, 'b', copied_from=source)
    assert copied.duplicating is source and copied.moving is None


# -- construction and reading ------------------------------------------------

def test_empty_folder():
    folder = Folder()
    assert len(folder) == 0
    assert bool(folder) is True
    assert folder.__name__ is None and folder.__parent__ is None
    assert list(folder) == []
    assert isinstance(folder._num_objects, Length)


def test_initial_data_is_added_without_events(events):
    a, b = Item(), Item()
    folder = Folder({'b': b, 'a': a})
    assert list(folder) == ['a', 'b']
    assert len(folder) == 2
    assert a.__parent__ is folder and a.__name__ == 'a'
    assert events == []


def test_initial_data_names_are_validated():
    with pytest.raises(InvalidName):
        Folder({'a/b': Item()})


def test_mapping_api():
    a, b, c = Item('a'), Item('b'), Item('c')
    folder = Folder()
    folder['b'] = b
    folder['a'] = a
    folder['c'] = c
    assert folder['a'] is a
    assert folder.get('b') is b
    assert folder.get('nope') is None
    assert folder.get('nope', 5) == 5
    assert folder.get(3, 5) == 5
    assert 'a' in folder and 'nope' not in folder and 3 not in folder
    assert len(folder) == 3
    assert list(folder) == ['a', 'b', 'c']
    assert list(folder.keys()) == ['a', 'b', 'c']
    assert list(folder.values()) == [a, b, c]
    assert list(folder.items()) == [('a', a), ('b', b), ('c', c)]
    del folder['b']
    assert list(folder) == ['a', 'c'] and len(folder) == 2
    assert b.__parent__ is None and b.__name__ is None


@pytest.mark.parametrize('key', ['missing', 3, None])
def test_getitem_missing_raises_folderkeyerror(key):
    with pytest.raises(FolderKeyError) as info:
        Folder()[key]
    assert isinstance(info.value, KeyError)
    assert info.value.args == (key,)


def test_keys_values_items_are_lazy_ranges():
    folder = Folder({f'k{i}': Item(str(i)) for i in range(10)})
    keys = folder.keys()
    assert not isinstance(keys, list)
    assert list(folder.keys('k3', 'k5')) == ['k3', 'k4', 'k5']
    assert list(folder.keys('k3', 'k5', excludemin=True,
                            excludemax=True)) == ['k4']
    assert [v.title for v in folder.values(min='k8')] == ['8', '9']
    assert list(folder.items(max='k1')) == [
        ('k0', folder['k0']), ('k1', folder['k1'])]


def test_repr():
    folder = Folder({'a': Item()})
    assert repr(folder) == "<pyramid_zeostore.folder.Folder None len=1>"
    parent = Folder()
    parent['docs'] = folder
    assert repr(folder) == "<pyramid_zeostore.folder.Folder 'docs' len=1>"


def test_repr_shows_oid(db):
    conn = db.open()
    conn.root()['f'] = folder = Folder()
    transaction.commit()
    oid = int.from_bytes(folder._p_oid, 'big')
    assert repr(folder) == (
        f"<pyramid_zeostore.folder.Folder None len=0 oid={oid:#x}>")


# -- names --------------------------------------------------------------------

INVISIBLE_NAME = (
    'Names which contain invisible characters (bidirectional controls, '
    'zero-width characters, byte order marks, other format characters, '
    'fillers) are not allowed: '
)
INVALID_NAMES = [
    (b'bytes', TypeError, "Names must be strings, not bytes: b'bytes'"),
    (1, TypeError, 'Names must be strings, not int: 1'),
    (None, TypeError, 'Names must be strings, not NoneType: None'),
    ('', InvalidName, 'Names must not be empty: ""'),
    ('.', InvalidName, 'Names "." and ".." are not allowed: "."'),
    ('..', InvalidName, 'Names "." and ".." are not allowed: ".."'),
    ('a/b', InvalidName, 'Names which contain "/" are not allowed: "a/b"'),
    ('/', InvalidName, 'Names which contain "/" are not allowed: "/"'),
    ('@@view', InvalidName,
     'Names which start with "@@" are not allowed: "@@view"'),
    ('++etc++site', InvalidName,
     'Names which start with "++" are not allowed: "++etc++site"'),
    ('a\nb', InvalidName,
     'Names which contain control characters are not allowed: "a\\nb"'),
    ('nul\x00', InvalidName,
     'Names which contain control characters are not allowed: "nul\\x00"'),
    ('del\x7f', InvalidName,
     'Names which contain control characters are not allowed: "del\\x7f"'),
    ('c1\x85', InvalidName,
     'Names which contain control characters are not allowed: "c1\\x85"'),
    ('x' * (MAX_NAME_LENGTH + 1), InvalidName,
     f'Names longer than 255 characters are not allowed: "{"x" * 40}"... '
     f'(256 characters)'),
    ('\ud800', InvalidName,
     'Names must be text: lone surrogates are not allowed: "\\ud800"'),
    ('photo\u202egpj.exe', InvalidName,
     INVISIBLE_NAME + '"photo\\u202egpj.exe"'),
    ('zero\u200bwidth', InvalidName,
     INVISIBLE_NAME + '"zero\\u200bwidth"'),
    ('\ufeffbom', InvalidName,
     INVISIBLE_NAME + '"\\ufeffbom"'),
    ('soft\u00adhyphen', InvalidName,
     INVISIBLE_NAME + '"soft\\xadhyphen"'),
    ('tag\U000e0041', InvalidName, INVISIBLE_NAME + '"tag\\U000e0041"'),
    ('\u3164', InvalidName, INVISIBLE_NAME + '"\\u3164"'),
    ('\u2028', InvalidName,
     'Names which contain line or paragraph separators are not allowed: '
     '"\\u2028"'),
    ('para\u2029graph', InvalidName,
     'Names which contain line or paragraph separators are not allowed: '
     '"para\\u2029graph"'),
    (' ', InvalidName,
     'Names which start or end with whitespace are not allowed: " "'),
    (' lead', InvalidName,
     'Names which start or end with whitespace are not allowed: " lead"'),
    ('trail\u3000', InvalidName,
     'Names which start or end with whitespace are not allowed: '
     '"trail\\u3000"'),
    ('\u00a0nbsp', InvalidName,
     'Names which start or end with whitespace are not allowed: '
     '"\\xa0nbsp"'),
]


@pytest.mark.parametrize('name, exc, message', INVALID_NAMES)
def test_invalid_names(name, exc, message):
    folder = Folder()
    for method in (folder.validate_name, folder.check_name,
                   lambda n: folder.add(n, Item())):
        with pytest.raises(exc) as info:
            method(name)
        assert str(info.value) == message
        if exc is InvalidName:
            assert isinstance(info.value, ValueError)
            assert info.value.name == name
    assert len(folder) == 0


class StrSub(str):
    pass


@pytest.mark.parametrize('name', [
    'a', 'file.txt', '...', '.hidden', 'a..b', '@a', '+a', 'a@@', 'é€',
    'two words', 'x' * MAX_NAME_LENGTH, 'no\u00a0break',
    'heart \u2764\ufe0f', '\u0645\u0631\u062d\u0628\u0627',
])
def test_valid_names(name):
    folder = Folder()
    assert folder.check_name(name) == name
    assert folder.add(name, Item()) == name
    assert folder[name].__name__ == name


def test_str_subclass_name_is_stored_as_str():
    folder = Folder()
    name = folder.add(StrSub('s'), Item())
    assert type(name) is str and type(next(iter(folder))) is str


def test_check_name_rejects_existing_name():
    folder = Folder({'taken': Item()})
    assert folder.validate_name('taken') == 'taken'
    with pytest.raises(FolderKeyError) as info:
        folder.check_name('taken')
    assert 'An object named "taken" already exists in <' in str(info.value)


# -- add and remove -----------------------------------------------------------

def test_add_returns_name_and_locates_child():
    folder, item = Folder(), Item()
    assert folder.add('n', item) == 'n'
    assert item.__parent__ is folder and item.__name__ == 'n'


def test_add_existing_name_raises_and_keeps_original():
    first = Item('first')
    folder = Folder({'n': first})
    with pytest.raises(FolderKeyError, match='"n" already exists'):
        folder['n'] = Item('second')
    assert folder['n'] is first and len(folder) == 1


def test_add_object_contained_elsewhere_raises():
    source, target, item = Folder(), Folder(), Item()
    source['n'] = item
    with pytest.raises(ValueError, match=r"already in .* as 'n': move\(\)"):
        target.add('m', item)
    with pytest.raises(ValueError, match='already in'):
        source.add('again', item)
    assert item.__parent__ is source and 'm' not in target
    assert len(source) == 1 and len(target) == 0


def test_add_object_with_stale_parent_is_allowed():
    stale_folder, folder = Folder(), Folder()
    item = Item()
    item.__parent__, item.__name__ = stale_folder, 'gone'
    folder['n'] = item
    other = Item()
    other.__parent__ = object()  # e.g. set for URL generation
    folder['o'] = other
    assert item.__parent__ is folder and other.__parent__ is folder
    assert item.__name__ == 'n'


def test_add_folder_into_itself_or_descendant_raises():
    root = tree()
    with pytest.raises(ValueError, match='would contain itself'):
        root.add('self', root)
    deep = root['sub']['deep']
    with pytest.raises(ValueError, match='would contain itself'):
        deep.add('loop', root)
    assert 'loop' not in deep and root.__parent__ is None


def test_remove_returns_object_and_detaches_it():
    item = Item()
    folder = Folder({'n': item, 'm': Item()})
    assert folder.remove('n') is item
    assert item.__parent__ is None and item.__name__ is None
    assert list(folder) == ['m'] and len(folder) == 1


@pytest.mark.parametrize('name', ['missing', 5])
def test_remove_missing_raises(name):
    with pytest.raises(FolderKeyError):
        Folder().remove(name)
    with pytest.raises(FolderKeyError):
        del Folder()[name]


def test_pop(events):
    item = Item()
    folder = Folder({'n': item, 'q': Item()})
    assert folder.pop('n') is item
    assert item.__parent__ is None
    assert kinds(events) == [('ObjectWillBeRemoved', 'n'),
                             ('ObjectRemoved', 'n')]
    assert folder.pop('n', 'dflt') == 'dflt'
    assert folder.pop(7, None) is None
    with pytest.raises(FolderKeyError):
        folder.pop('n')
    del events[:]
    folder.pop('q', send_events=False)
    assert events == [] and len(folder) == 0


def test_clear(events):
    items = [Item(), Item(), Item()]
    folder = Folder(dict(zip('cab', items, strict=True)))
    folder.clear()
    assert len(folder) == 0 and list(folder) == []
    assert all(i.__parent__ is None for i in items)
    assert kinds(events) == [
        ('ObjectWillBeRemoved', 'a'), ('ObjectRemoved', 'a'),
        ('ObjectWillBeRemoved', 'b'), ('ObjectRemoved', 'b'),
        ('ObjectWillBeRemoved', 'c'), ('ObjectRemoved', 'c')]
    del events[:]
    folder = Folder({'a': Item()})
    folder.clear(send_events=False)
    assert events == [] and len(folder) == 0


def test_len_tracks_adds_and_removes():
    folder = Folder()
    for i in range(100):
        folder[f'i{i:03d}'] = Item()
    for i in range(0, 100, 3):
        del folder[f'i{i:03d}']
    assert len(folder) == len(list(folder)) == 66
    assert folder._num_objects() == 66


# -- events -------------------------------------------------------------------

def test_add_and_remove_send_events_in_order(events):
    folder, item = Folder(), Item()
    state = []

    def probe(event):
        state.append((type(event).__name__, item.__parent__ is folder,
                      'n' in folder))

    get_current_registry().registerHandler(probe, (IObjectEvent,))
    folder.add('n', item)
    folder.remove('n')
    assert kinds(events) == [
        ('ObjectWillBeAdded', 'n'), ('ObjectAdded', 'n'),
        ('ObjectWillBeRemoved', 'n'), ('ObjectRemoved', 'n')]
    assert state == [
        ('ObjectWillBeAdded', False, False), ('ObjectAdded', True, True),
        ('ObjectWillBeRemoved', True, True), ('ObjectRemoved', False, False)]
    for event in events:
        assert event.object is item and event.parent is folder
        assert event.top is item and not event.moving
        assert event.copied_from is None


def test_adding_a_tree_sends_preorder_events(events):
    root = tree()
    del events[:]
    parent = Folder()
    parent.add('t', root)
    names = [(type(e).__name__, e.name) for e in events]
    order = ['t', 'a', 'sub', 'deep', 'y', 'x', 'z']
    assert names == ([('ObjectWillBeAdded', n) for n in order]
                     + [('ObjectAdded', n) for n in order])
    assert all(e.top is root for e in events)
    by_name = {e.name: e for e in events if isinstance(e, ObjectAdded)}
    assert by_name['t'].parent is parent
    assert by_name['y'].parent is root['sub']['deep']
    assert by_name['y'].object is root['sub']['deep']['y']


def test_removing_a_tree_sends_postorder_events(events):
    parent = Folder()
    root = parent['t'] = tree()
    sub = root['sub']
    del events[:]
    assert parent.remove('t') is root
    order = ['a', 'y', 'deep', 'x', 'sub', 'z', 't']
    assert kinds(events) == ([('ObjectWillBeRemoved', n) for n in order]
                             + [('ObjectRemoved', n) for n in order])
    assert all(e.top is root for e in events)
    assert events[-1].parent is parent and events[-1].object is root
    assert {e.name: e.parent for e in events}['x'] is sub
    # descendants stay in the removed folder
    assert sub.__parent__ is root and root.__parent__ is None


def test_send_events_false_sends_nothing(events):
    a, b, t = Folder(), Folder(), tree()
    del events[:]
    a.add('n', t, send_events=False)
    a.rename('n', 'm', send_events=False)
    a.move('m', b, send_events=False)
    b.copy('m', a, send_events=False)
    b.replace('m', Item(), send_events=False)
    b.remove('m', send_events=False)
    a.pop('m', send_events=False)
    assert events == []
    assert len(a) == len(b) == 0


def test_explicit_registry_is_used(events):
    registry = Registry('explicit')
    seen = []
    registry.registerHandler(seen.append, (IObjectEvent,))
    folder = Folder()
    folder.add('n', Item(), registry=registry)
    folder.remove('n', registry=registry)
    assert kinds(seen) == [
        ('ObjectWillBeAdded', 'n'), ('ObjectAdded', 'n'),
        ('ObjectWillBeRemoved', 'n'), ('ObjectRemoved', 'n')]
    assert events == []


def test_registry_without_listeners_is_not_notified():
    notified = []

    class Silent(Registry):
        def notify(self, *events):
            notified.extend(events)

    registry = Silent('silent')
    assert registry.has_listeners is False
    folder = Folder()
    folder.add('n', tree(), registry=registry)
    folder.remove('n', registry=registry)
    assert notified == []


def test_any_registry_with_notify_works():
    class Minimal:
        def __init__(self):
            self.seen = []

        def notify(self, event):
            self.seen.append(event)

    registry = Minimal()
    folder = Folder()
    folder.add('n', Item(), registry=registry)
    assert kinds(registry.seen) == [('ObjectWillBeAdded', 'n'),
                                    ('ObjectAdded', 'n')]


@pytest.mark.parametrize('veto', [IObjectWillBeAdded, IObjectWillBeRemoved])
def test_will_be_subscriber_can_veto(veto):
    config = testing.setUp()
    try:
        folder, kept = Folder(), Item()
        folder.add('kept', kept)

        def refuse(event):
            raise RuntimeError('no')

        config.add_subscriber(refuse, veto)
        with pytest.raises(RuntimeError):
            if veto is IObjectWillBeAdded:
                folder.add('n', Item())
            else:
                folder.remove('kept')
        assert list(folder) == ['kept'] and len(folder) == 1
        assert kept.__parent__ is folder and kept.__name__ == 'kept'
    finally:
        testing.tearDown()


class IMarked(Interface):
    """A content type subscribers can be registered for."""


@implementer(IMarked)
class Marked(Item):
    """Content providing IMarked."""


def test_typed_subscribers_get_the_event_and_the_object_once_each():
    config = testing.setUp()
    try:
        calls = []
        config.add_subscriber(
            lambda e: calls.append(('plain', type(e).__name__, e.name)),
            IObjectAdded)
        config.add_subscriber(
            lambda e, o: calls.append(('typed', e.name, o)),
            [IObjectAdded, IMarked])
        config.add_subscriber(
            lambda e, o, p: calls.append(('container', e.name, o, p)),
            [IObjectAdded, IMarked, IFolder])
        config.add_subscriber(
            lambda e, o: calls.append(('any', e.name)),
            [IObjectWillBeRemoved, Interface])
        folder, marked, item = Folder(), Marked(), Item()
        folder['m'] = marked
        folder['i'] = item
        assert calls == [
            ('plain', 'ObjectAdded', 'm'), ('typed', 'm', marked),
            ('container', 'm', marked, folder),
            ('plain', 'ObjectAdded', 'i')]  # Item is not IMarked
        del calls[:]
        folder.remove('i')
        folder.add('n', 7)  # a value that provides nothing but Interface
        assert calls == [('any', 'i'), ('plain', 'ObjectAdded', 'n')]
    finally:
        testing.tearDown()


def test_no_event_is_made_when_nothing_subscribes(monkeypatch):
    import pyramid_zeostore.folder as module

    def refuse(*args, **kwargs):
        raise AssertionError('made an event or walked a subtree')

    for name in ('ObjectWillBeAdded', 'ObjectAdded', 'ObjectWillBeRemoved',
                 'ObjectRemoved', '_subtree'):
        monkeypatch.setattr(module, name, refuse)
    testing.setUp()  # a registry with nothing subscribed
    try:
        assert get_current_registry().has_listeners is False
        a, b = Folder(), Folder()
        a['t'] = tree()
        a.rename('t', 'u')
        a.move('u', b)
        b.copy('u', a)
        b.replace('u', Item())
        a.add_next(Item())
        b.remove('u')
        a.clear()
    finally:
        testing.tearDown()


def test_a_bare_component_registry_gets_every_shape():
    registry = Components('bare')  # no notify(), no has_listeners
    seen = []
    registry.registerHandler(lambda e: seen.append(1), (IObjectAdded,))
    registry.registerHandler(lambda e, o: seen.append(2),
                             (IObjectAdded, IMarked))
    registry.registerHandler(lambda e, o, p: seen.append(3),
                             (IObjectAdded, Interface, Interface))
    Folder().add('m', Marked(), registry=registry)
    assert seen == [1, 2, 3]


def test_subtree_events_one_per_object_unlike_substanced(events):
    """repoze.folder and Substance D send one event, for the object
    added or removed; here each object of its subtree gets its own, and
    a subscriber that wants one per call keeps those of ``top``."""
    parent = Folder()
    top = tree()  # 6 objects below it
    del events[:]
    parent.add('t', top)
    parent.remove('t')
    assert len(events) == 4 * 7
    tops = [e for e in events if e.object is e.top]
    assert kinds(tops) == [
        ('ObjectWillBeAdded', 't'), ('ObjectAdded', 't'),
        ('ObjectWillBeRemoved', 't'), ('ObjectRemoved', 't')]
    # removal: every WillBeRemoved (children first), then every Removed
    removal = events[14:]
    assert [e.name for e in removal[:7]] == [
        'a', 'y', 'deep', 'x', 'sub', 'z', 't']
    assert [type(e) for e in removal] == (
        [ObjectWillBeRemoved] * 7 + [ObjectRemoved] * 7)
    deep = next(e for e in removal if e.name == 'deep')
    assert deep.parent is top['sub'] and deep.top is top


# -- move and rename ----------------------------------------------------------

def test_move_between_folders(events):
    source, target = Folder(), Folder()
    item = source['n'] = Item()
    del events[:]
    assert source.move('n', target) is item
    assert 'n' not in source and target['n'] is item
    assert item.__parent__ is target and item.__name__ == 'n'
    assert len(source) == 0 and len(target) == 1
    assert kinds(events) == [
        ('ObjectWillBeRemoved', 'n'), ('ObjectRemoved', 'n'),
        ('ObjectWillBeAdded', 'n'), ('ObjectAdded', 'n')]
    for event in events:
        assert event.moving and event.object is item
        assert (event.old_parent, event.old_name) == (source, 'n')
        assert (event.new_parent, event.new_name) == (target, 'n')
    assert [e.parent for e in events] == [source, source, target, target]


def test_move_with_new_name_and_subtree(events):
    source, target = Folder(), Folder()
    sub = source['sub'] = tree()
    del events[:]
    source.move('sub', target, 'renamed')
    assert target['renamed'] is sub and sub.__name__ == 'renamed'
    assert sub['sub']['deep']['y'].__parent__ is sub['sub']['deep']
    names = kinds(events)
    assert names[:7] == [('ObjectWillBeRemoved', n) for n in
                         ['a', 'y', 'deep', 'x', 'sub', 'z', 'sub']]
    assert names[14] == ('ObjectWillBeAdded', 'renamed')
    assert len(events) == 28
    assert all(e.moving and e.new_name == 'renamed' for e in events)


def test_move_errors_leave_everything_unchanged():
    source, target = Folder(), Folder()
    item = source['n'] = Item()
    target['taken'] = Item()
    with pytest.raises(FolderKeyError):
        source.move('missing', target)
    with pytest.raises(FolderKeyError):
        source.move('n', target, 'taken')
    with pytest.raises(InvalidName):
        source.move('n', target, '@@bad')
    with pytest.raises(TypeError, match='Can only move into a Folder'):
        source.move('n', {})
    assert source['n'] is item and item.__parent__ is source
    assert list(target) == ['taken']


def test_move_into_itself_or_descendant_raises():
    root = Folder()
    outer = root['outer'] = tree()
    deep = outer['sub']['deep']
    for destination in (outer, deep):
        with pytest.raises(ValueError, match='would contain itself'):
            root.move('outer', destination)
    assert root['outer'] is outer and outer.__parent__ is root


def test_move_to_same_place_does_nothing(events):
    folder = Folder()
    item = folder['n'] = Item()
    del events[:]
    assert folder.move('n', folder) is item
    assert folder.rename('n', 'n') is item
    assert events == [] and folder['n'] is item


def test_rename(events):
    folder = Folder()
    item = folder['old'] = Item()
    folder['other'] = Item()
    del events[:]
    assert folder.rename('old', 'new') is item
    assert list(folder) == ['new', 'other'] and len(folder) == 2
    assert item.__name__ == 'new' and item.__parent__ is folder
    assert [e.moving for e in events] == [folder] * 4
    assert events[0].old_name == 'old' and events[-1].new_name == 'new'
    assert events[0].old_parent is events[-1].new_parent is folder
    with pytest.raises(FolderKeyError):
        folder.rename('new', 'other')
    assert folder['new'] is item


def test_move_events_carry_the_other_folder(events):
    source, target = Folder(), Folder()
    top = source['t'] = tree()
    del events[:]
    source.move('t', target)
    removal, adding = events[:14], events[14:]
    assert all(e.moving is target for e in removal)
    assert all(e.moving is source for e in adding)
    assert all(e.top is top and e.old_name == 't' for e in events)


def test_remove_and_add_with_moving_make_a_move_of_ones_own(events):
    source, target = Folder(), Folder()
    item = source['n'] = Item()
    del events[:]
    assert source.remove('n', moving=target) is item
    assert target.add('m', item, moving=source) == 'm'
    will, removed, will_add, added = events
    assert will.moving is removed.moving is target
    assert (will.old_parent, will.old_name, will.new_parent) == (
        source, 'n', target)
    assert will_add.moving is added.moving is source
    assert (added.old_parent, added.new_parent, added.new_name) == (
        source, target, 'm')


def test_a_subscriber_tells_a_move_from_a_delete():
    config = testing.setUp()
    try:
        seen = []

        def on_removal(event):
            if event.object is event.top:
                seen.append((event.name, 'delete' if event.moving is None
                             else f'move to {event.moving.__name__}'))

        config.add_subscriber(on_removal, IObjectWillBeRemoved)
        root = Folder()
        root['a'], root['b'] = Folder(), Folder()
        a = root['a']
        a['x'], a['y'], a['z'], a['w'] = Item(), Item(), Item(), Item()
        a.move('x', root['b'])
        a.rename('y', 'y2')
        a.replace('z', Item())
        del a['w']
        source = a.copy('y2', a, 'y3')
        a.remove('y3')
        assert source.__name__ is None
        assert seen == [('x', 'move to b'), ('y', 'move to a'),
                        ('z', 'delete'), ('w', 'delete'), ('y3', 'delete')]
    finally:
        testing.tearDown()


# -- replace ------------------------------------------------------------------

def test_replace_existing(events):
    old, new = Item('old'), Item('new')
    folder = Folder({'n': old})
    assert folder.replace('n', new) is old
    assert folder['n'] is new and len(folder) == 1
    assert old.__parent__ is None and new.__parent__ is folder
    assert [(type(e).__name__, e.object.title) for e in events] == [
        ('ObjectWillBeRemoved', 'old'), ('ObjectRemoved', 'old'),
        ('ObjectWillBeAdded', 'new'), ('ObjectAdded', 'new')]


def test_replace_missing_just_adds(events):
    folder, new = Folder(), Item()
    assert folder.replace('n', new) is None
    assert folder['n'] is new
    assert kinds(events) == [('ObjectWillBeAdded', 'n'),
                             ('ObjectAdded', 'n')]


def test_replace_with_same_object():
    item = Item()
    folder = Folder({'n': item})
    assert folder.replace('n', item) is item
    assert folder['n'] is item and item.__parent__ is folder


def test_replace_checks_before_removing():
    old = Item()
    folder, elsewhere = Folder({'n': old}), Folder()
    placed = elsewhere['p'] = Item()
    with pytest.raises(InvalidName):
        folder.replace('a/b', Item())
    with pytest.raises(ValueError, match='already in'):
        folder.replace('n', placed)
    with pytest.raises(ValueError, match='would contain itself'):
        folder.replace('n', folder)
    assert folder['n'] is old and old.__parent__ is folder


# -- copy ---------------------------------------------------------------------

def walk(obj):
    """obj and every object inside it (folder contents, recursively)."""
    yield obj
    if isinstance(obj, Folder):
        for child in obj.values():
            yield from walk(child)


def test_copy_plain_object_is_deep(events):
    source, target = Folder(), Folder()
    original = source['p'] = Plain([['nested']])
    del events[:]
    copy = source.copy('p', target)
    assert copy is not original and target['p'] is copy
    assert copy.tags == [['nested']]
    assert copy.tags is not original.tags
    assert copy.tags[0] is not original.tags[0]
    assert copy.__parent__ is target and original.__parent__ is source
    assert kinds(events) == [('ObjectWillBeAdded', 'p'),
                             ('ObjectAdded', 'p')]
    assert all(e.copied_from is original and e.object is copy
               for e in events)
    assert not any(e.moving for e in events)


def test_copy_plain_container_of_persistent_child():
    folder = Folder()
    original = folder['h'] = Holder()
    copy = folder.copy('h', folder, 'h2')
    assert copy.child is not original.child
    assert copy.child.__parent__ is copy
    assert copy.child.title == 'inner'


def test_copy_tree_in_memory(events):
    root = Folder()
    original = root['t'] = tree()
    shared = root['shared'] = Item('shared')
    original['a'].related = shared           # located, outside: shared
    original['a'].notes = PersistentList(['n'])   # unlocated: copied
    original['a'].notes_alias = original['a'].notes
    original['a'].kind = Plain                 # a class reference
    del events[:]
    copy = root.copy('t', root, 't2')
    assert copy.__parent__ is root and copy.__name__ == 't2'
    assert len(copy) == 3 and list(copy) == list(original)
    olds, news = list(walk(original)), list(walk(copy))
    assert [getattr(o, 'title', None) for o in olds] == [
        getattr(n, 'title', None) for n in news]
    assert not {id(o) for o in olds} & {id(n) for n in news}
    assert copy['sub']['deep']['y'].__parent__ is copy['sub']['deep']
    assert copy['sub'].__parent__ is copy
    assert copy._data is not original._data
    assert copy._num_objects is not original._num_objects
    a2 = copy['a']
    assert a2.related is shared
    assert a2.notes == ['n'] and a2.notes is not original['a'].notes
    assert a2.notes_alias is a2.notes
    assert a2.kind is Plain
    order = ['t2', 'a', 'sub', 'deep', 'y', 'x', 'z']
    assert kinds(events) == ([('ObjectWillBeAdded', n) for n in order]
                             + [('ObjectAdded', n) for n in order])
    assert all(e.copied_from is original and e.top is copy for e in events)
    copy['sub']['new'] = Item()
    assert 'new' not in original['sub'] and len(original['sub']) == 2


def test_copy_into_own_descendant():
    root = Folder()
    original = root['t'] = tree()
    copy = root.copy('t', original['sub'], 'again')
    assert original['sub']['again'] is copy
    assert 'again' not in copy['sub']
    assert len(copy['sub']) == 2


def test_copy_errors():
    folder = Folder({'n': Item(), 'taken': Item()})
    with pytest.raises(FolderKeyError):
        folder.copy('missing', folder, 'x')
    with pytest.raises(FolderKeyError):
        folder.copy('n', folder)
    with pytest.raises(FolderKeyError):
        folder.copy('n', folder, 'taken')
    with pytest.raises(InvalidName):
        folder.copy('n', folder, '..')
    with pytest.raises(TypeError, match='Can only copy into a Folder'):
        folder.copy('n', [])
    assert list(folder) == ['n', 'taken']


def test_copy_stored_tree_gets_new_oids(db):
    conn = db.open()
    root = conn.root()['app'] = Folder()
    original = root['t'] = tree()
    transaction.commit()
    original['a'].title = 'uncommitted'
    conn.cacheMinimize()  # everything unchanged is a ghost again
    assert original['sub']._p_changed is None
    copy = root.copy('t', root, 't2')
    assert copy._p_jar is None and copy._p_oid is None
    assert copy['a'].title == 'uncommitted'
    transaction.commit()
    olds = {o._p_oid for o in walk(original)}
    news = {o._p_oid for o in walk(copy)}
    assert None not in news and len(news) == 7
    assert not olds & news
    conn2 = db.open(transaction_manager=transaction.TransactionManager())
    again = conn2.root()['app']['t2']
    assert again['sub']['deep']['y'].title == 'y'
    assert again['sub']['deep']['y'].__parent__.__parent__.__parent__ is again
    assert again.__parent__ is conn2.root()['app']
    conn2.close()


def test_copy_big_folder_does_not_recurse():
    big = Folder()
    for i in range(20_000):
        big.add(f'{i:05d}', Plain(), send_events=False)
    root = Folder({'big': big})
    copy = root.copy('big', root, 'copy', send_events=False)
    assert len(copy) == 20_000
    assert list(copy) == list(big)
    assert copy['12345'] is not big['12345']
    assert copy['12345'].__parent__ is copy


class File(Persistent):
    """Content holding a blob."""

    def __init__(self, data: bytes) -> None:
        self.blob = Blob(data)


def test_copy_blob_in_memory():
    folder = Folder({'f': File(b'payload')})
    copy = folder.copy('f', folder, 'g')
    assert copy.blob is not folder['f'].blob
    with copy.blob.open('r') as f:
        assert f.read() == b'payload'
    with copy.blob.open('w') as f:
        f.write(b'changed')
    with folder['f'].blob.open('r') as f:
        assert f.read() == b'payload'


def test_copy_committed_blob(tmp_path):
    storage = ZODB.FileStorage.FileStorage(
        str(tmp_path / 'Data.fs'), blob_dir=str(tmp_path / 'blobs'))
    database = ZODB.DB(storage)
    try:
        conn = database.open()
        root = conn.root()['app'] = Folder({'f': File(b'stored')})
        transaction.commit()
        conn.cacheMinimize()
        copy = root.copy('f', root, 'g')
        transaction.commit()
        assert copy.blob._p_oid != root['f'].blob._p_oid
        with copy.blob.open('r') as f:
            assert f.read() == b'stored'
    finally:
        transaction.abort()
        database.close()


# -- plain values ----------------------------------------------------------

def test_plain_values_are_stored_as_they_are(events):
    folder = Folder({'a': 1, 'b': 'text', 'c': (1, 2), 'k': Plain})
    assert dict(folder.items()) == {'a': 1, 'b': 'text', 'c': (1, 2),
                                    'k': Plain}
    assert Plain.__parent__ is folder  # a class can carry attributes
    folder['x'] = 5
    other = Folder()
    other['x'] = 5  # the same int object, in two folders
    assert folder['x'] == other['x'] == 5 and len(folder) == 5
    assert [(type(e).__name__, e.object) for e in events[-4:]] == [
        ('ObjectWillBeAdded', 5), ('ObjectAdded', 5),
        ('ObjectWillBeAdded', 5), ('ObjectAdded', 5)]
    folder.rename('b', 'b2')
    folder.move('c', other)
    assert other.copy('c', folder, 'c2') == (1, 2)
    assert folder.replace('a', 2) == 1
    assert folder.remove('x') == 5 and folder.pop('b2') == 'text'
    assert sorted(folder) == ['a', 'c2', 'k'] and folder['a'] == 2
    assert sorted(other) == ['c', 'x']
    folder.clear()
    assert len(folder) == 0


def test_plain_values_in_a_stored_folder(db):
    conn = db.open()
    folder = conn.root()['f'] = Folder({'n': 1, 's': 'text'})
    folder['t'] = ('a', 2)
    transaction.commit()
    conn2 = db.open(transaction_manager=transaction.TransactionManager())
    assert dict(conn2.root()['f'].items()) == {
        'n': 1, 's': 'text', 't': ('a', 2)}
    conn2.close()


# -- add_next --------------------------------------------------------------

def test_add_next_names_by_counting(events):
    folder = Folder()
    first, second = Item(), Item()
    assert folder.add_next(first) == '0'
    assert folder.add_next(second) == '1'
    assert first.__name__ == '0' and second.__parent__ is folder
    assert kinds(events) == [
        ('ObjectWillBeAdded', '0'), ('ObjectAdded', '0'),
        ('ObjectWillBeAdded', '1'), ('ObjectAdded', '1')]
    folder['2'] = Item()  # taken by hand: skipped
    folder['3'] = Item()
    assert folder.add_next(Item()) == '4'
    del folder['4']
    assert folder.add_next(Item()) == '5'  # not given again
    assert folder.add_next(Item(), prefix='doc-') == 'doc-0'
    assert folder.add_next(Item(), 'doc-') == 'doc-1'
    assert folder.add_next(Item(), prefix='cafe\u0301-') == 'caf\u00e9-0'
    assert folder.add_next(Item(), prefix='caf\u00e9-') == 'caf\u00e9-1'
    del events[:]
    assert folder.add_next(7, send_events=False) == '6'
    assert events == [] and folder['6'] == 7


def test_add_next_refuses_a_bad_prefix_before_counting():
    folder = Folder()
    with pytest.raises(InvalidName, match='"@@"'):
        folder.add_next(Item(), prefix='@@')
    with pytest.raises(InvalidName, match='"/"'):
        folder.add_next(Item(), prefix='a/')
    with pytest.raises(TypeError, match='prefix must be a string, not int'):
        folder.add_next(Item(), prefix=1)
    assert folder._autonames is None and len(folder) == 0
    placed = Folder()
    placed['p'] = item = Item()
    with pytest.raises(ValueError, match='already in'):
        folder.add_next(item)
    assert folder.add_next(Item()) == '0' and len(folder) == 1


def test_add_next_writes_the_folder_once(db):
    conn = db.open()
    folder = conn.root()['f'] = Folder()
    transaction.commit()
    folder.add_next(Item())
    assert folder._p_changed is True  # the counters, made now
    transaction.commit()
    folder.add_next(Item())
    folder.add_next(Item(), registry=Registry('explicit'))
    assert folder._p_changed is False
    assert isinstance(folder._autonames[''], Length)
    assert folder._autonames['']() == 3
    transaction.commit()


# -- persistence --------------------------------------------------------------

def test_add_and_remove_do_not_write_the_folder_record(db):
    conn = db.open()
    folder = conn.root()['f'] = Folder({'a': Item()})
    transaction.commit()
    folder['b'] = Item()
    assert folder._p_changed is False
    assert folder._num_objects._p_changed is True
    transaction.commit()
    del folder['a']
    folder.rename('b', 'c')
    assert folder._p_changed is False
    transaction.commit()


# -- pagination ---------------------------------------------------------------

def test_page_slices():
    folder = Folder({f'k{i:02d}': Item(str(i)) for i in range(20)})
    assert folder.page() == list(folder.items())
    assert [n for n, _ in folder.page(5, 3)] == ['k05', 'k06', 'k07']
    assert folder.page(18, 5) == [('k18', folder['k18']),
                                  ('k19', folder['k19'])]
    assert folder.page(20) == [] and folder.page(3, 0) == []
    assert [n for n, _ in folder.page(after='k09', size=2)] == ['k10', 'k11']
    assert [n for n, _ in folder.page(1, 2, after='k05')] == ['k07', 'k08']
    assert [n for n, _ in folder.page(after='k055', size=1)] == ['k06']
    assert folder.page(after='k19') == []
    for start, size in ((-1, 5), (0, -1)):
        with pytest.raises(ValueError, match='must not be negative'):
            folder.page(start, size)


N_BIG = 100_000


@pytest.fixture(scope='module')
def big_storage(tmp_path_factory):
    """A FileStorage holding a Folder of 100,000 Items, built once."""
    path = str(tmp_path_factory.mktemp('big') / 'Data.fs')
    database = ZODB.DB(ZODB.FileStorage.FileStorage(path))
    tm = transaction.TransactionManager()
    conn = database.open(transaction_manager=tm)
    folder = conn.root()['folder'] = Folder()
    for i in range(N_BIG):
        folder.add(f'item-{i:06d}', Item(str(i)), send_events=False)
    tm.commit()
    database.close()
    return path


@contextlib.contextmanager
def fresh_folder(path: str):
    """``(conn, zodb_root['folder'])`` of the FileStorage at ``path``,
    read-only, from a fresh DB and connection (an empty cache)."""
    database = ZODB.DB(ZODB.FileStorage.FileStorage(path, read_only=True))
    conn = database.open(transaction_manager=transaction.TransactionManager())
    try:
        yield conn, conn.root()['folder']
    finally:
        database.close()


@pytest.fixture
def big_folder(big_storage):
    """The big folder, from a fresh DB and connection (empty cache)."""
    with fresh_folder(big_storage) as (conn, folder):
        assert len(folder) == N_BIG
        yield conn, folder


def loaded_children(folder) -> list[str]:
    """Names of children that are not ghosts (checking loads nothing)."""
    return [name for name, obj in folder.items() if obj._p_changed is not None]


def test_page_of_50_loads_no_child_object(big_folder, record_property):
    conn, folder = big_folder
    conn.getTransferCounts(clear=True)
    start = time.perf_counter()
    page = folder.page(50_000, 50)
    elapsed = time.perf_counter() - start
    walked, _ = conn.getTransferCounts(clear=True)
    assert [n for n, _ in page] == [f'item-{i:06d}'
                                    for i in range(50_000, 50_050)]
    assert all(obj._p_changed is None for _, obj in page)
    assert loaded_children(folder) == []
    conn.getTransferCounts(clear=True)
    titles = [obj.title for _, obj in page]
    used, _ = conn.getTransferCounts(clear=True)
    assert titles == [str(i) for i in range(50_000, 50_050)]
    assert used == 50
    assert loaded_children(folder) == [n for n, _ in page]
    record_property('records_loaded_by_offset_page', walked)
    print(f'\npage(50000, 50) of {N_BIG}: {walked} records loaded '
          f'(BTree nodes/buckets), 0 children, {elapsed * 1000:.0f} ms; '
          f'using the 50 loads {used} records')


def test_keyset_page_loads_few_records(big_folder, record_property):
    conn, folder = big_folder
    conn.getTransferCounts(clear=True)
    page = folder.page(size=50, after='item-070000')
    loads, _ = conn.getTransferCounts(clear=True)
    assert [n for n, _ in page] == [f'item-{i:06d}'
                                    for i in range(70_001, 70_051)]
    assert loads <= 20  # BTree path + the few buckets of the page
    assert loaded_children(folder) == []
    record_property('records_loaded_by_keyset_page', loads)
    print(f'\npage(after=...) of {N_BIG}: {loads} records loaded, '
          f'0 children')


# -- the children's BTree ---------------------------------------------------


def _widest_interior_node(tree):
    """The most children any interior node of ``tree`` has."""
    state = tree.__getstate__()
    if state is None or len(state[0]) == 1:  # empty, or one bucket
        return 0
    children = state[0][0::2]
    widest = len(children)
    for child in children:
        if isinstance(child, OOBTree):
            widest = max(widest, _widest_interior_node(child))
    return widest


def test_children_live_in_a_tree_of_narrow_interior_nodes():
    folder = Folder()
    assert type(folder._data) is FolderTree
    for i in range(5000):
        folder.add(f'item-{i:05d}', Item(), send_events=False)
    # An OOBTree puts 5,000 children's ~250 buckets under one root node.
    assert 2 < _widest_interior_node(folder._data) <= 32
    assert len(folder) == 5000
    assert folder['item-02500'] is folder._data['item-02500']


def test_a_folder_made_with_a_plain_oobtree_still_works():
    folder = Folder()
    folder._data = OOBTree()  # as folders made before FolderTree
    folder.add('a', Item(), send_events=False)
    folder.add('b', Item(), send_events=False)
    assert list(folder) == ['a', 'b'] and len(folder) == 2
    assert [name for name, _ in folder.page(after='a', size=5)] == ['b']
    folder.remove('a', send_events=False)
    assert 'a' not in folder and len(folder) == 1


def test_names_are_stored_in_nfc_and_found_in_either_form():
    """``é`` and ``e`` + U+0301 look the same: one name, not two."""
    folder = Folder()
    decomposed, composed = 'caf' + 'e\u0301', 'caf\u00e9'
    child = Folder()
    assert folder.add(decomposed, child) == composed
    assert list(folder) == [composed] and child.__name__ == composed
    assert folder[decomposed] is child and decomposed in folder
    assert folder.get(decomposed) is child
    with pytest.raises(FolderKeyError):
        folder.add(composed, Folder())
    assert folder.remove(decomposed) is child
    assert len(folder) == 0 and composed not in folder


def test_a_name_stored_before_nfc_is_still_found():
    folder = Folder()
    decomposed = 'e\u0301'
    folder._data[decomposed] = child = Folder()  # as an older version did
    folder._num_objects.change(1)
    assert folder[decomposed] is child
    assert folder.remove(decomposed) is child
