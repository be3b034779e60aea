"""Interfaces of the database and connection layers (merged into
interfaces.py)."""

from zope.interface import Attribute, Interface


class IDatabases(Interface):
    """The databases of one configuration, opened lazily per process."""

    specs = Attribute('The DatabaseSpec of each database, primary first.')
    connect_timeout = Attribute('Seconds to wait for an absent ZEO server.')

    def get(name=''):
        """This process's ZODB.DB called ``name`` ('' is the primary)."""

    def close():
        """Close the databases this process opened."""


class IZeostoreSettings(Interface):
    """Marker for the parsed ZeostoreSettings registered as a utility."""


class IAppmaker(Interface):
    """Marker for the ``appmaker(zodb_root) -> app_root`` callable."""


class IConnectionEvent(Interface):
    conn = Attribute('The ZODB connection.')
    request = Attribute('The request the connection serves.')
