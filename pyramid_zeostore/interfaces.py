"""Interfaces of pyramid_zeostore."""

from __future__ import annotations

from pyramid.interfaces import ILocation
from zope.interface import Attribute, Interface
from zope.interface.interfaces import IObjectEvent as _IZopeObjectEvent


class IFolder(ILocation):
    """A persistent, BTree-backed mapping of names (``str``) to objects,
    sorted by name unless given an order.

    Children get ``__parent__``/``__name__`` when added and lose them when
    removed; adding and removing send object events through the Pyramid
    registry (see :mod:`pyramid_zeostore.events`).
    """

    order = Attribute('The names in order (a tuple), or None when the '
                      'folder is unordered; settable and deletable.')

    def __getitem__(name):
        """Return the object named ``name``; raise ``FolderKeyError``."""

    def get(name, default=None):
        """Return the object named ``name``, or ``default``."""

    def __contains__(name):
        """Return True if an object is named ``name``."""

    def __len__():
        """Return the number of objects (O(1))."""

    def __iter__():
        """Iterate over names in order (sorted when unordered)."""

    def keys(min=None, max=None, excludemin=False, excludemax=False):
        """Return a lazy sequence of the names, optionally a range."""

    def values(min=None, max=None, excludemin=False, excludemax=False):
        """Return a lazy sequence of the objects, optionally a name range."""

    def items(min=None, max=None, excludemin=False, excludemax=False):
        """Return a lazy sequence of (name, object), optionally a range."""

    def page(start=0, size=50, after=None):
        """Return a list of at most ``size`` (name, object) pairs."""

    def is_ordered():
        """Return True if the folder has an order of its own."""

    def set_order(names):
        """Order the children as ``names`` (each exactly once); None
        unsets the order."""

    def unset_order():
        """Make the folder unordered: sorted by name."""

    def reorder(names, before=None):
        """Move the children ``names`` to just before ``before`` (or to
        the end) in an ordered folder."""

    def validate_name(name):
        """Return ``name`` if it may name a child; raise otherwise."""

    def check_name(name):
        """Like ``validate_name``, and raise ``FolderKeyError`` if taken."""

    def __setitem__(name, other):
        """Same as ``add(name, other)``."""

    def __delitem__(name):
        """Same as ``remove(name)``."""

    def add(name, other, send_events=True, moving=None, registry=None):
        """Add ``other`` as ``name``; return the name."""

    def add_next(other, prefix='', send_events=True, registry=None):
        """Add ``other`` under the next free ``prefix`` + number name;
        return the name."""

    def remove(name, send_events=True, moving=None, registry=None):
        """Remove the object named ``name`` and return it."""

    def pop(name, default=None, send_events=True, registry=None):
        """Remove and return the object named ``name``, or ``default``."""

    def clear(send_events=True, registry=None):
        """Remove every object."""

    def rename(oldname, newname, send_events=True, registry=None):
        """Give the object named ``oldname`` the name ``newname``."""

    def replace(name, newobject, send_events=True, registry=None):
        """Put ``newobject`` in place of the object named ``name``."""

    def move(name, other, newname=None, send_events=True, registry=None):
        """Move the object named ``name`` into the folder ``other``."""

    def copy(name, other, newname=None, send_events=True, registry=None):
        """Put a deep copy of the object named ``name`` into ``other``."""


class IObjectEvent(_IZopeObjectEvent):
    """An object was (or is about to be) added to or removed from a folder.

    Adding or removing a folder sends one event per object of its subtree;
    ``top`` tells them apart from the event of the object itself. Each
    event reaches the subscribers of ``(event,)``, ``(event, object)`` and
    ``(event, object, parent)``.
    """

    object = Attribute('The object the event is about.')
    parent = Attribute('The folder ``object`` is (being) added to or '
                       'removed from: its ``__parent__``.')
    name = Attribute('The name of ``object`` in ``parent``.')
    top = Attribute('The object passed to add/remove/move/copy: '
                    '``object`` itself, or an ancestor of it when the '
                    'event is for a descendant.')
    moving = Attribute('None, or during a move or rename the other folder '
                       '(Substance D): the folder ``top`` goes to in the '
                       'removal events, the one it comes from in the add '
                       'events.')
    old_parent = Attribute('Moving: the folder ``top`` comes from, else None.')
    old_name = Attribute('Moving: the name ``top`` had, else None.')
    new_parent = Attribute('Moving: the folder ``top`` goes to, else None.')
    new_name = Attribute('Moving: the name ``top`` gets, else None.')
    copied_from = Attribute('Copying: the original ``top`` was copied '
                            'from, else None.')
    duplicating = Attribute('Substance D\'s name for ``copied_from``.')


class IObjectWillBeAdded(IObjectEvent):
    """Sent before an object is added; it has no ``__parent__`` yet."""


class IObjectAdded(IObjectEvent):
    """Sent after an object was added and got ``__parent__``/``__name__``."""


class IObjectWillBeRemoved(IObjectEvent):
    """Sent before an object is removed, while its path still resolves."""


class IObjectRemoved(IObjectEvent):
    """Sent after an object was removed; ``__parent__`` is None again."""


class IDatabases(Interface):
    """The databases of one configuration, opened lazily per process.

    Implemented by :class:`pyramid_zeostore.Databases`; registered as a
    utility by ``includeme``. Every method opens this process's databases
    first if it has none (a forked child opens its own).
    """

    specs = Attribute('The DatabaseSpec of each database, primary first.')
    names = Attribute("The databases' names, primary ('') first.")
    connect_timeout = Attribute('Seconds to wait for an absent ZEO server.')
    is_open = Attribute('Has this process opened its databases?')
    bootstrapped = Attribute(
        'Has the app root been made in this process (see root.bootstrap)? '
        'Reset when the databases are (re)opened.'
    )

    def spec(name=''):
        """The DatabaseSpec called ``name``; raise KeyError."""

    def get(name=''):
        """This process's ZODB.DB called ``name`` ('' is the primary).

        Raise DatabaseUnavailable when a server does not answer in time.
        """

    def wait_connected(name, deadline):
        """Wait until ``name``'s ZEO client is connected (True) or the
        ``time.monotonic()`` ``deadline`` passed (False)."""

    def unavailable(name='', probe_timeout=1.0):
        """The DatabaseUnavailable error for ``name`` (not raised), its
        reason found within ``probe_timeout`` seconds."""

    def disconnected_exceptions():
        """The exceptions this process's storages raise when their server
        went away (RelStorage drivers); () before they are open."""

    def sync(name=''):
        """One round trip to ``name``'s ZEO server: its invalidations are
        then all in."""

    def sync_all():
        """``sync`` with every database."""

    def close():
        """Close the databases this process opened."""


class IZeostoreSettings(Interface):
    """Marker for the parsed ZeostoreSettings registered as a utility."""


class IZeostoreAppSettings(Interface):
    """Marker for the ready app's parsed AppSettings (a utility)."""


class IAppmaker(Interface):
    """Marker for the ``appmaker(zodb_root) -> app_root`` callable."""


class IConnectionEvent(Interface):
    """A ZODB connection of a request was opened or is being closed."""

    conn = Attribute('The ZODB connection.')
    request = Attribute('The request the connection serves.')


class IZODBRequestMetrics(Interface):
    """A request's ZODB metrics are complete."""

    request = Attribute('The request.')
    metrics = Attribute('Its RequestMetrics, summed over its attempts.')


class IHealthView(Interface):
    """The health check's view callable, ``view(request) -> response``;
    the read tween answers ``zeostore.health_path`` with it."""


class IConnectionListeners(Interface):
    """Which connection events have subscribers, looked up once."""

    opened = Attribute('Anything subscribes to ZODBConnectionOpened.')
    will_close = Attribute('... to ZODBConnectionWillClose.')
    closed = Attribute('... to ZODBConnectionClosed.')

    def find():
        """Look the subscribers up now (the read tween does, when the app
        is made); return the listeners."""

    def listening(event_class):
        """Does anything subscribe to events of ``event_class``?"""

    def notify(event_class, conn, request):
        """Send an ``event_class(conn, request)`` if anything listens."""


class IRequestProperties(Interface):
    """``ensure(request)``: give a request that the request factory did
    not make (``Request.blank()``) ``tm`` and ``zodb_conn``."""


class IEvolutionSteps(Interface):
    """The evolve steps an application registered with
    ``config.add_evolution_step`` (see :mod:`pyramid_zeostore.evolve`)."""

    def add(step):
        """Add a ``Step``; its name must be new."""

    def ordered():
        """The steps in the order they run (by ``before``/``after``, else
        registration order).

        :raises ConfigurationError: a cycle, or a name that no step has.
        """

    def get(name):
        """The step called ``name``, or None."""

    def mark_new(zodb_root):
        """Record every step as finished in ``zodb_root``, a new
        database's, in the transaction that made its app root."""
