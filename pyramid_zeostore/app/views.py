"""The ready app's pages and JSON API, by traversal over the folder tree.

Reads (permission ``view``): ``GET`` any object (HTML, or JSON with
``Accept: application/json`` or ``?format=json``); folders list a page at
a time (``?after=&size=``). Writes (permission ``edit``, JSON bodies):
``POST folder`` creates a child (a form post too), ``PATCH obj`` sets
attributes, ``DELETE obj`` removes it, ``POST obj/@@increment`` adds to a
number attribute. A plain value stored in a folder (a number, text, a
list... put there from a shell) is shown read-only, and can be deleted.
Who may do what is :mod:`.security`'s; the cross-site checks every write
passes are :mod:`.csrf`'s. Other methods: 405 with ``Allow``.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode

from pyramid.httpexceptions import (
    HTTPBadRequest,
    HTTPConflict,
    HTTPCreated,
    HTTPMethodNotAllowed,
    HTTPRequestEntityTooLarge,
    HTTPSeeOther,
    HTTPUnsupportedMediaType,
)
from pyramid.response import Response
from pyramid.traversal import quote_path_segment, resource_path

from ..exceptions import FolderKeyError
from ..folder import Folder
from ..interfaces import IZeostoreAppSettings
from .content import (
    MAX_DEPTH,
    Item,
    attribute_problem,
    holder,
    is_value,
    json_size,
    loads,
    public_attributes,
    shown_value,
    store,
    unbox,
    value_problem,
)
from .csrf import form_fields
from .html import csrf_field, identity_of, page

PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
#: ``?start=`` walks the BTree buckets up to it: deeper pages use ``after``
MAX_START = 10_000
KINDS = {'folder': Folder, 'item': Item}
#: The largest whole numbers an increment may make: what a JSON client
#: can read back (Python writes at most 4300 digits, and reads no more).
MAX_INT_DIGITS = 4000
MAX_INT_BITS = int(MAX_INT_DIGITS * 3.3219)  # log2(10)
JSON = 'application/json'
FORM = 'application/x-www-form-urlencoded'
#: What each kind of object answers (OPTIONS and 405 say so).
ALLOW = {
    'folder': ('GET', 'HEAD', 'OPTIONS', 'POST', 'PATCH', 'DELETE'),
    'item': ('GET', 'HEAD', 'OPTIONS', 'PATCH', 'DELETE'),
    'value': ('GET', 'HEAD', 'OPTIONS', 'DELETE'),
    'increment': ('OPTIONS', 'POST'),
    'login': ('GET', 'HEAD', 'OPTIONS', 'POST'),
    'logout': ('GET', 'HEAD', 'OPTIONS', 'POST'),
}


def wants_json(request: Any) -> bool:
    if request.GET.get('format') == 'json':
        return True
    offers = request.accept.acceptable_offers(
        ['text/html', 'application/json']
    )
    return bool(offers) and offers[0][0] == 'application/json'


def bad_request(message: str) -> HTTPBadRequest:
    return _json_error(HTTPBadRequest, message)


def _json_error(cls: Any, message: str) -> Any:
    exc = cls(detail=message)
    exc.content_type = 'application/json'
    exc.json_body = {'error': exc.title, 'message': message}
    return exc


def _int_param(request: Any, name: str, default: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f'{name} must be a whole number') from None
    if not 0 <= value <= high:
        raise bad_request(f'{name} must be between 0 and {high}')
    return value


def _json_body(request: Any) -> dict:
    """The body as a JSON object: finite numbers only (no ``NaN`` or
    ``Infinity``, which Python's JSON takes and no client could read
    back), nested at most :data:`~.content.MAX_DEPTH` levels."""
    try:
        body = loads(request.body.decode('utf-8'))
    except ValueError as e:  # not UTF-8, not JSON, NaN, digits, too deep
        raise bad_request(
            f'expected a JSON object as the body ({e})'
        ) from None
    if not isinstance(body, dict):
        raise bad_request(
            'expected a JSON object as the body, nested at most '
            f'{MAX_DEPTH} levels'
        )
    return body


def _form(request: Any) -> dict:
    """A form post's fields; they must be UTF-8 (webob would store U+FFFD
    for what is not)."""
    raw = request.body
    if request.content_type == 'application/x-www-form-urlencoded':
        raw = unquote_to_bytes(raw.replace(b'+', b' '))
    try:
        raw.decode('utf-8')
    except UnicodeDecodeError:
        raise bad_request('the form is not valid UTF-8') from None
    body = dict(form_fields(request))
    body.pop('csrf_token', None)
    return body


def kind_of(obj: Any) -> str:
    """'folder', 'item' (any other persistent object) or 'value' (see
    :func:`~.content.is_value`); a ghost stays one."""
    if isinstance(obj, Folder):
        return 'folder'
    return 'value' if is_value(obj) else 'item'


def describe(obj: Any, request: Any) -> dict:
    """The JSON form of ``obj`` (without a folder's children); a plain
    value (the request's context) as its ``value`` or ``repr``."""
    if is_value(obj):
        path = _context_path(request)
        return {
            'name': path[-1] if path else '',
            'path': '/' + '/'.join(map(quote_path_segment, path)),
            'type': 'value',
            'attributes': {},
            **shown_value(obj),
        }
    return {
        'name': obj.__name__ or '',
        'path': resource_path(obj),
        'type': kind_of(obj),
        'attributes': public_attributes(obj),
    }


def _context_path(request: Any) -> tuple[str, ...]:
    """The names from the root to the context: a plain value knows
    neither its name nor its parent."""
    return tuple(request.traversed)


def folder_page(context: Folder, request: Any) -> dict:
    """A page of ``context``'s children: ``?after=NAME`` (keyset paging,
    O(log n) however deep) and/or ``?start=N`` (positional, walks the
    buckets up to it: capped at :data:`MAX_START`); the ``next`` link
    pages by key."""
    start = _int_param(request, 'start', 0, MAX_START)
    size = _int_param(request, 'size', PAGE_SIZE, MAX_PAGE_SIZE)
    after = request.GET.get('after') or None
    # One more than the page tells whether there is a next one.
    try:
        found = context.page(start, size + 1, after=after)
    except FolderKeyError:
        # An ordered folder pages by position: ``after`` must be a child
        # (one deleted since the last page was served is not).
        raise bad_request(
            f'?after={after!r}: no child of that name in this ordered '
            'folder; start again from the first page'
        ) from None
    # Paths from the folder's own and the names: the children stay
    # ghosts (their class says folder or item without loading them).
    base = resource_path(context).rstrip('/') + '/'
    items = [
        {
            'name': name,
            'type': kind_of(child),
            'path': base + quote_path_segment(name),
        }
        for name, child in found[:size]
    ]
    data = describe(context, request)
    data.update(
        length=len(context), start=start, after=after, size=size,
        items=items,
    )
    data['next'] = (
        base + '?' + urlencode({'after': items[-1]['name'], 'size': size})
        if len(found) > size and items
        else None
    )
    return data


def show(context: Any, request: Any) -> Any:
    """GET: a folder's page of children, or an item's attributes."""
    if isinstance(context, Folder):
        data = folder_page(context, request)
    else:
        data = describe(context, request)
    if wants_json(request):
        return Response(json_body=data)
    return Response(_html(data, request), content_type='text/html')


def _set_attributes(request: Any, obj: Any, attributes: Any) -> None:
    """Check every attribute first, then set them all (or none)."""
    if not isinstance(attributes, dict):
        raise bad_request('attributes must be a JSON object')
    settings = request.registry.getUtility(IZeostoreAppSettings)
    sizes = {}
    for name, value in attributes.items():
        problem = attribute_problem(obj, name)
        if problem is not None:
            raise bad_request(problem)
        problem = value_problem(value)
        if problem is not None:
            raise bad_request(f'{name}: {problem}')
        size = sizes[name] = json_size(value)
        if size > settings.max_value:
            raise _json_error(
                HTTPRequestEntityTooLarge,
                f'{name}: the value is {size} bytes of JSON, more than '
                f'{settings.max_value} (zeostore.max_value); nothing was '
                'saved',
            )
    for name, value in attributes.items():
        store(obj, name, value, settings.large_value, sizes[name])


def _content_type(request: Any, *allowed: str) -> None:
    if request.content_type not in allowed:
        raise _json_error(
            HTTPUnsupportedMediaType,
            f'expected a body of type {" or ".join(allowed)}, not '
            f'{request.content_type or "none"}',
        )


def create(context: Folder, request: Any) -> Any:
    """POST to a folder: add a child folder or item."""
    _content_type(request, JSON, FORM)
    if request.content_type == JSON:
        body = _json_body(request)
    else:
        body = _form(request)
    name = body.get('name')
    kind = body.get('type', 'item')
    if not isinstance(kind, str) or kind not in KINDS:
        raise bad_request('type must be "folder" or "item"')
    try:
        name = context.validate_name(name)
    except (TypeError, ValueError) as e:
        raise bad_request(str(e)) from None
    if name in context:
        raise _json_error(HTTPConflict, f'{name!r} exists already')
    child = KINDS[kind]()
    _set_attributes(request, child, body.get('attributes', {}))
    context.add(name, child)
    if request.content_type != JSON:
        return HTTPSeeOther(location=request.resource_url(context))
    response = HTTPCreated(json_body=describe(child, request))
    response.location = request.resource_url(child)
    return response


def update(context: Any, request: Any) -> Any:
    """PATCH: set attributes from a JSON object."""
    _no_value(context, request)
    _content_type(request, JSON)
    _set_attributes(request, context, _json_body(request))
    return Response(json_body=describe(context, request))


def delete(context: Any, request: Any) -> Any:
    """DELETE: remove the object (or plain value) from its folder."""
    if is_value(context):
        return _delete_value(request)
    parent = context.__parent__
    if parent is None:
        raise bad_request('the root cannot be deleted')
    path = resource_path(context)
    parent.remove(context.__name__)
    return Response(json_body={'deleted': path})


def _delete_value(request: Any) -> Any:
    """DELETE a plain value: an entry of the folder it was found in (it
    knows neither its name nor its folder), not a member of a list or
    dict of another object."""
    names = _context_path(request)
    parent = holder(request.root, names)
    path = describe(request.context, request)['path']
    if not isinstance(parent, Folder):
        raise bad_request(
            f'{path} is a member of a {type(parent).__name__}, not a '
            'child of a folder: change the object that holds it instead'
        )
    parent.remove(names[-1])
    return Response(json_body={'deleted': path})


def _no_value(context: Any, request: Any) -> None:
    """405 for a write other than DELETE to a plain value: it has no
    attributes to set."""
    if is_value(context):
        path = describe(context, request)['path']
        response = _json_error(
            HTTPMethodNotAllowed,
            f'{path} is a plain value ({type(context).__name__}), stored '
            f'in its folder: it has no attributes to {request.method} '
            f'(replace it: DELETE it, then POST an item); allowed: '
            f'{", ".join(_allowed(context, request))}',
        )
        response.headers['Allow'] = ', '.join(_allowed(context, request))
        raise response


def increment(context: Any, request: Any) -> Any:
    """POST @@increment: ``{"attribute": "counter", "by": 1}``."""
    _no_value(context, request)
    body = _json_body(request) if request.body else {}
    name = body.get('attribute', 'counter')
    by = body.get('by', 1)
    problem = attribute_problem(context, name)
    if problem is not None:
        raise bad_request(problem)
    if not isinstance(by, int) or isinstance(by, bool):
        raise bad_request('by must be a whole number')
    value = unbox(getattr(context, name, 0))
    if not isinstance(value, int) or isinstance(value, bool):
        kind = type(value).__name__
        raise bad_request(f'{name!r} holds a {kind}, not a whole number')
    total = value + by
    if total.bit_length() > MAX_INT_BITS:
        raise bad_request(
            f'{name!r} would exceed {MAX_INT_DIGITS} digits: not done'
        )
    settings = request.registry.getUtility(IZeostoreAppSettings)
    store(context, name, total, settings.large_value,
          len(str(total)) + 1)
    return Response(json_body={'attribute': name, 'value': total})


def not_allowed(context: Any, request: Any) -> Any:
    """405 with ``Allow`` for a method this object does not answer;
    OPTIONS: 204 with ``Allow``."""
    allow = ', '.join(_allowed(context, request))
    if request.method == 'OPTIONS':
        response = Response(status=204)
    else:
        response = _json_error(
            HTTPMethodNotAllowed,
            f'{request.method} is not allowed here; allowed: {allow}',
        )
    response.headers['Allow'] = allow
    return response


def _allowed(context: Any, request: Any) -> tuple[str, ...]:
    """The methods this object (or its view) answers."""
    view = request.view_name
    if is_value(context) and view in ('', 'increment'):
        return ALLOW['value'] if not view else ('OPTIONS',)
    return ALLOW.get(view or kind_of(context), ALLOW['item'])


def _html(data: dict, request: Any) -> str:
    base = request.script_name
    rows = ''.join(
        f'<li><a href="{escape(base + item["path"])}">'
        f'{escape(item["name"])}</a> ({item["type"]})</li>'
        for item in data.get('items', ())
    )
    attrs = ''.join(
        f'<tr><th>{escape(k)}</th><td>{escape(json.dumps(v))}</td></tr>'
        for k, v in data['attributes'].items()
    )
    parts = [f'<table>{attrs}</table>' if attrs else '']
    if data['type'] == 'value':
        shown = (json.dumps(data['value']) if 'value' in data
                 else data['repr'])
        parts.append('<p>A plain value, stored in its folder:</p>'
                     f'<pre>{escape(shown)}</pre>')
    if data['type'] == 'folder':
        nxt = data['next']
        parts += [
            f'<p>{data["length"]} item(s)</p><ul>{rows}</ul>',
            f'<a href="{escape(base + nxt)}">next page</a>' if nxt else '',
        ]
        identity = identity_of(request)
        if identity is not None and identity.via == 'session' and (
            request.has_permission('edit')
        ):
            parts.append(
                '<form method="post"><label for="name">Name</label> '
                '<input id="name" name="name"> <label for="type">Type'
                '</label> <select id="type" name="type"><option>item'
                f'</option><option>folder</option></select>{csrf_field(request)}'
                '<button>Add</button></form>'
            )
    return page(request, data['path'], ''.join(parts))
