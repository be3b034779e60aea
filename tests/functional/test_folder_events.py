"""Folder events and order in a real app over ZEO.

A ``Configurator`` with ``pyramid_zeostore`` and subscribers of each
shape (``add_subscriber(h, IObjectAdded)``, ``[IObjectAdded,
IDocument]`` and Substance D's ``[IObjectWillBeRemoved, IDocument,
IFolder]``), views that add, move, rename, delete and order content, run
through WebTest against a ``runzeo`` server: each subscriber is called
once per event, with the object, only for its content type; what a
subscriber changes is committed with the request; a subscriber tells a
move from a delete; an order set in one request is kept by the next.
"""

from __future__ import annotations

import transaction
from persistent import Persistent
from pyramid.config import Configurator
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.traversal import find_resource
from webtest import TestApp
from zope.interface import Interface, implementer

from pyramid_zeostore import Folder, get_databases
from pyramid_zeostore.interfaces import (
    IFolder,
    IObjectAdded,
    IObjectWillBeRemoved,
)


class IDocument(Interface):
    """The content type the typed subscribers are registered for."""


@implementer(IDocument)
class Document(Persistent):
    def __init__(self, title: str) -> None:
        self.title = title


class Note(Persistent):
    """Content that is no IDocument."""

    def __init__(self, title: str) -> None:
        self.title = title


KINDS = {'document': Document, 'note': Note, 'folder': lambda _: Folder()}


def add(context, request):
    name = request.params['name']
    context[name] = KINDS[request.params['kind']](name)
    return {'added': name}


def add_next(context, request):
    return {'added': context.add_next(Document('auto'), prefix='doc-')}


def move(context, request):
    target = find_resource(context, request.params['to'])
    context.move(request.params['name'], target)
    return {}


def rename(context, request):
    context.rename(request.params['name'], request.params['to'])
    return {}


def delete(context, request):
    del context[request.params['name']]
    return {}


def set_order(context, request):
    context.set_order(request.params.getall('name'))
    return {}


def reorder(context, request):
    context.reorder(request.params.getall('name'),
                    request.params.get('before'))
    return {}


def listing(context, request):
    return {'names': list(context), 'order': context.order}


def make_app(zeo_server):
    config = Configurator(settings={'zodb_uri': zeo_server.uri()})
    config.include('pyramid_zeostore')
    for view in (add, add_next, move, rename, delete, set_order, reorder):
        config.add_view(view, context=Folder, name=view.__name__,
                        request_method='POST', renderer='json',
                        permission=NO_PERMISSION_REQUIRED)
    config.add_view(listing, context=Folder, name='listing',
                    renderer='json', permission=NO_PERMISSION_REQUIRED)
    calls: list[tuple] = []

    def every_added(event):
        calls.append(('added', event.name))

    def document_added(event, obj):
        assert obj is event.object
        calls.append(('document added', event.name))
        obj.stamped = f'added to {event.parent.__name__ or "root"}'

    def document_removing(event, obj, container):
        assert container is event.parent
        how = 'delete' if event.moving is None else 'move'
        calls.append(('document removing', event.name, how))

    config.add_subscriber(every_added, IObjectAdded)
    config.add_subscriber(document_added, [IObjectAdded, IDocument])
    config.add_subscriber(document_removing,
                          [IObjectWillBeRemoved, IDocument, IFolder])
    app = config.make_wsgi_app()
    return TestApp(app), config.registry, calls


def stored_root(registry):
    """The app root as committed, read on a connection of its own."""
    conn = get_databases(registry).get().open(
        transaction_manager=transaction.TransactionManager())
    return conn, conn.root()['app_root']


def test_subscribers_of_each_shape_over_zeo(zeo_server):
    testapp, registry, calls = make_app(zeo_server)
    try:
        testapp.post('/add', {'kind': 'document', 'name': 'd1'})
        assert calls == [('added', 'd1'), ('document added', 'd1')]
        del calls[:]
        testapp.post('/add', {'kind': 'note', 'name': 'n1'})
        assert calls == [('added', 'n1')]  # not a document
        testapp.post('/add', {'kind': 'folder', 'name': 'box'})
        del calls[:]
        testapp.post('/move', {'name': 'd1', 'to': '/box'})
        assert calls == [('document removing', 'd1', 'move'),
                         ('added', 'd1'), ('document added', 'd1')]
        del calls[:]
        testapp.post('/box/rename', {'name': 'd1', 'to': 'd2'})
        assert calls == [('document removing', 'd1', 'move'),
                         ('added', 'd2'), ('document added', 'd2')]
        testapp.post('/add', {'kind': 'document', 'name': 'gone'})
        del calls[:]
        testapp.post('/delete', {'name': 'gone'})
        testapp.post('/delete', {'name': 'n1'})
        assert calls == [('document removing', 'gone', 'delete')]

        conn, root = stored_root(registry)
        try:
            assert sorted(root) == ['box']
            assert root['box']['d2'].stamped == 'added to box'
            assert root['box']['d2'].__parent__ is root['box']
        finally:
            conn.close()
    finally:
        get_databases(registry).close()


def test_an_ordered_folder_over_zeo(zeo_server):
    testapp, registry, calls = make_app(zeo_server)
    try:
        for name in ('c', 'a', 'b'):
            testapp.post('/add', {'kind': 'note', 'name': name})
        assert testapp.get('/listing').json['order'] is None
        testapp.post('/set_order', {'name': ['c', 'a', 'b']})
        testapp.post('/add', {'kind': 'note', 'name': 'd'})
        assert testapp.post('/add_next').json == {'added': 'doc-0'}
        testapp.post('/reorder', {'name': ['d'], 'before': 'c'})
        testapp.post('/rename', {'name': 'a', 'to': 'a2'})
        assert testapp.get('/listing').json == {
            'names': ['d', 'c', 'a2', 'b', 'doc-0'],
            'order': ['d', 'c', 'a2', 'b', 'doc-0']}
        conn, root = stored_root(registry)
        try:
            assert root.order == ('d', 'c', 'a2', 'b', 'doc-0')
            assert [n for n, _ in root.page(1, 2)] == ['c', 'a2']
            assert root['doc-0'].stamped == 'added to root'
        finally:
            conn.close()
    finally:
        get_databases(registry).close()
