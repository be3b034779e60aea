"""Views, by traversal: a folder lists and adds, a document shows and
edits itself. Each request is one transaction (pyramid_tm): committed
when the view returns, aborted when it raises."""

from pyramid.csrf import CookieCSRFStoragePolicy
from pyramid.events import BeforeRender, subscriber
from pyramid.httpexceptions import HTTPBadRequest, HTTPSeeOther
from pyramid.location import lineage
from pyramid.view import view_config
from pyramid_zeostore import Folder

from .models import Document

PAGE_SIZE = 50
KINDS = {'document': Document, 'folder': Folder}


def includeme(config):
    # Every POST needs the CSRF token of the forms (a cookie's value).
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True)
    config.scan('.views')


def title_of(obj):
    return getattr(obj, 'title', None) or obj.__name__ or ''


@subscriber(BeforeRender)
def layout_globals(event):
    """What templates/layout.jinja2 shows on every page."""
    request = event['request']
    context = event['context']
    event['breadcrumbs'] = list(lineage(context))[-2::-1]
    event['stylesheet'] = request.static_url(f'{__package__}:static/style.css')


@view_config(context=Folder, request_method='GET',
             renderer='templates/folder.jinja2')
def folder_view(context, request):
    """A page of the folder's contents and a form to add to it.

    Pages go by name (``?after=<last name>``): finding one is O(log n) in
    the folder's BTree however deep it is, where an offset would walk
    every bucket before it.
    """
    after = request.params.get('after') or None
    found = context.page(0, PAGE_SIZE + 1, after=after)
    items = [
        {
            'name': name,
            'title': title_of(obj),
            'kind': 'folder' if isinstance(obj, Folder) else 'document',
            'url': request.resource_url(obj),
        }
        for name, obj in found[:PAGE_SIZE]
    ]
    return {
        'title': title_of(context),
        'items': items,
        'count': len(context),
        'next_url': (
            request.resource_url(
                context, query={'after': items[-1]['name']}
            )
            if len(found) > PAGE_SIZE else None
        ),
    }


@view_config(context=Folder, name='add', request_method='POST')
def add_view(context, request):
    """Add a document or a folder named by the form; back to the folder."""
    kind = request.POST.get('kind', 'document')
    if kind not in KINDS:
        raise HTTPBadRequest(f'kind must be one of {", ".join(KINDS)}')
    name = request.POST.get('name', '').strip()
    try:
        name = context.check_name(name)
    except (ValueError, KeyError) as e:  # not allowed, or taken
        raise HTTPBadRequest(e.args[0]) from None
    title = request.POST.get('title', '').strip() or name
    if kind == 'document':
        obj = Document(title, request.POST.get('body', ''))
    else:
        obj = Folder()
        obj.title = title
    context.add(name, obj)
    return HTTPSeeOther(request.resource_url(context))


@view_config(context=Document, request_method='GET',
             renderer='templates/document.jinja2')
def document_view(context, request):
    """The document and a form to edit it."""
    return {'title': context.title, 'document': context}


@view_config(context=Document, name='edit', request_method='POST')
def edit_view(context, request):
    """Save the form's text and title; a title is required.

    The text is set before the title is checked: when the check fails the
    view raises, the request's transaction is aborted and the text is
    not saved either (tests/test_functional.py shows it).
    """
    context.body = request.POST.get('body', '')
    title = request.POST.get('title', '').strip()
    if not title:
        raise HTTPBadRequest('a document needs a title')
    context.title = title
    return HTTPSeeOther(request.resource_url(context))
