"""The content: a folder tree whose root is the :class:`Site`."""

from persistent import Persistent
from pyramid_zeostore import Folder


class Site(Folder):
    """The app root: a folder with a title."""

    title = "{{ cookiecutter.project_name }}"


class Document(Persistent):
    """Sample content: a title and a text, stored in a folder."""

    __name__ = None
    __parent__ = None

    def __init__(self, title='', body=''):
        self.title = title
        self.body = body


def appmaker(zodb_root):
    """Return the app root, making it if the database is new.

    pyramid_zeostore runs it once per process in a transaction of its own
    (so it may write), then on each request (where it only reads).
    """
    try:
        return zodb_root['app_root']
    except KeyError:
        site = zodb_root['app_root'] = Site()
        return site
