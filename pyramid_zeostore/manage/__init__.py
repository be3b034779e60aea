"""The object browser: ``config.include('pyramid_zeostore.manage')``.

Mounts ``@@manage`` pages on every object of the tree, as Zope's ZMI and
Substance D's SDI do: a folder's contents (breadcrumbs, a page of
children by keyset, their type, size and last change; add, rename,
delete after a confirmation page listing what goes), and any persistent
object's stored attributes, shown without running its code, with links
to the persistent objects it holds (``@@manage/oid/HEX`` for those
without a path) and a form to edit simple ones. Every page needs the
``manage`` permission of the app's security policy (the ready app, which
includes this, gives it to its managers); pages are server-rendered from
Jinja2 templates with one stylesheet of their own and no script.
"""

from __future__ import annotations

from typing import Any

from ..folder import Folder
from . import views

MANAGE = {'permission': 'manage'}
READ = ('GET', 'HEAD')


def includeme(config: Any) -> None:
    """Register the pages, their templates and their stylesheet."""
    config.include('pyramid_jinja2')
    # A view, not add_static_view: a route would make every request of a
    # traversal app run the routes mapper.
    config.add_view(views.stylesheet, name='manage.css',
                    request_method=READ, **MANAGE)
    config.add_view(views.manage_view, name='manage', request_method=READ,
                    **MANAGE)
    config.add_view(views.folder_object, name='manage-object',
                    context=Folder, request_method=READ, **MANAGE)
    config.add_view(views.add, name='manage-add', context=Folder,
                    request_method='POST', **MANAGE)
    config.add_view(views.rename, name='manage-rename', context=Folder,
                    request_method='POST', **MANAGE)
    config.add_view(views.confirm_delete, name='manage-delete',
                    context=Folder, request_method=READ, **MANAGE)
    config.add_view(views.delete, name='manage-delete', context=Folder,
                    request_method='POST', **MANAGE)
    config.add_view(views.edit, name='manage-edit', request_method='POST',
                    **MANAGE)
    config.include('pyramid_zeostore.manage.clipboard')
    config.include('pyramid_zeostore.manage.history')
    config.include('pyramid_zeostore.manage.database')
