"""A small app with pyramid_debugtoolbar over ZEO, for the ZODB panel's
functional and browser tests.

Its root is a ``Box`` of three ``Item`` resources (``/a``, ``/b``,
``/c``). The appmaker empties the connection's cache first, so each
request loads exactly what it touches: the ZODB root, the box, and the
items its view reads; ``POST /NAME/@@bump`` stores one item and, with
``?conflict=1``, makes its first attempt conflict (another connection
commits a change to the same item between the view's read and its
commit). Every answer is HTML, for the toolbar to inject its button.
"""

from __future__ import annotations

import transaction
from persistent import Persistent
from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_zeostore import get_databases

NAMES = ('a', 'b', 'c')
USER = 'tester'


class Box(Persistent):
    """The app root: its items in a plain dict (loading the box loads
    none of them)."""

    __parent__ = None
    __name__ = None

    def __init__(self) -> None:
        self.items: dict = {}

    def __getitem__(self, name: str) -> Item:
        return self.items[name]


class Item(Persistent):
    def __init__(self, parent: Box, name: str) -> None:
        self.__parent__ = parent
        self.__name__ = name
        self.title = f'Item {name}'
        self.count = 0


def appmaker(zodb_root):
    # A cold cache: the request's loads are what it touches from here on.
    zodb_root._p_jar.cacheMinimize()
    if 'app_root' not in zodb_root:
        box = Box()
        box.items = {name: Item(box, name) for name in NAMES}
        zodb_root['app_root'] = box
    return zodb_root['app_root']


def page(text: str) -> Response:
    return Response(f'<html><body><p>{text}</p></body></html>')


def read_view(context, request):
    """Loads every item (and, before it, the root and the box)."""
    return page(', '.join(context[name].title for name in NAMES))


def bump_view(context, request):
    """Store this item, noted; ``?conflict=1``: conflict on attempt 0."""
    count = context.count
    if request.params.get('conflict') and not request.environ.get(
        'retry.attempt'
    ):
        tm = transaction.TransactionManager(explicit=True)
        tm.begin()
        other = get_databases(request.registry).get('').open(
            transaction_manager=tm
        )
        try:
            other.root()['app_root'][context.__name__].count += 100
            tm.commit()
        finally:
            other.close()
    context.count = count + 1
    txn = request.tm.get()
    txn.note(f'bump {context.__name__}')
    txn.user = USER
    return page(f'{context.__name__}: {context.count}')


def edit_view(context, request):
    """A form that bumps the item, conflicting once (for a browser)."""
    return Response(
        '<html><body><form method="post" action="@@bump?conflict=1">'
        f'<button id="bump" type="submit">Bump {context.__name__}</button>'
        '</form></body></html>'
    )


def make_app(settings: dict, toolbar_first: bool = False, configure=None):
    """The WSGI app: pyramid_zeostore and pyramid_debugtoolbar included
    in either order; ``configure(config)`` adds a test's own."""
    settings = {
        'debugtoolbar.hosts': '127.0.0.1',
        **settings,
    }
    with Configurator(settings=settings) as config:
        if toolbar_first:
            config.include('pyramid_debugtoolbar')
        config.include('pyramid_zeostore')
        if not toolbar_first:
            config.include('pyramid_debugtoolbar')
        config.set_zodb_appmaker(appmaker)
        config.add_view(read_view, context=Box, name='read')
        config.add_view(bump_view, context=Item, name='bump',
                        request_method='POST')
        config.add_view(edit_view, context=Item, name='edit',
                        request_method='GET')
        if configure is not None:
            configure(config)
    return config.make_wsgi_app()


def main(global_config, **settings):
    """``use = call:tests.functional.toolbarapp:main``."""
    return make_app(settings)
