"""The object browser's pages: folder contents, objects, and their forms.

Every page needs the ``manage`` permission of the app's security policy
(the ready app gives it to its managers). Reads load only what a page
shows: a folder's page of children by keyset (``?after=``), never the
others. Every write records who made it and what it did on its
transaction (``user``, ``note``), and answers a form that went wrong
with the same page and the error on it (400), never raw JSON.
"""

from __future__ import annotations

import datetime
import json
import os
from functools import partial
from typing import Any
from urllib.parse import urlencode

from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound, HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.response import FileResponse
from pyramid.traversal import quote_path_segment, resource_path
from ZODB.POSException import POSKeyError
from ZODB.utils import p64

from ..app.content import (
    Item,
    attribute_problem,
    holder,
    is_value,
    json_size,
    loads,
    value_problem,
)
from ..app.settings import AppSettings
from ..exceptions import FolderKeyError
from ..folder import Folder
from ..interfaces import IZeostoreAppSettings
from . import render

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: the kinds a form may add, in the form's order, and their classes
CLASSES = {'folder': Folder, 'item': Item}
KINDS = tuple(CLASSES)
#: the types the edit form offers, and how each reads its text
PARSERS = {
    'str': str,
    'int': int,
    'float': float,
    'bool': lambda text: {'true': True, 'false': False}[text.strip().lower()],
    'date': datetime.date.fromisoformat,
    'json': loads,
}
MAX_FIELD = 65536
#: what each type's value must be, for the form's error message
EXPECTED = {
    'str': 'text', 'int': 'a whole number', 'float': 'a number',
    'bool': 'true or false', 'date': 'a date (YYYY-MM-DD)',
    'json': 'JSON',
}


def manage_url(request: Any, obj: Any, view: str = 'manage',
               **query: Any) -> str:
    url = request.resource_url(obj, '@@' + view)
    query = {k: v for k, v in query.items() if v is not None}
    return url + ('?' + urlencode(query, doseq=True) if query else '')


def breadcrumbs(request: Any, obj: Any) -> list[tuple[str, str]]:
    """(label, url) from the root down to ``obj``."""
    chain = []
    while obj is not None:
        chain.append(obj)
        obj = getattr(obj, '__parent__', None)
    return [
        (getattr(o, '__name__', None) or '/', manage_url(request, o))
        for o in reversed(chain)
    ]


def note(request: Any, text: str) -> None:
    """Say on this request's transaction who did what (undo log, history),
    in place of the request path pyramid_tm put there."""
    txn = request.tm.get()
    if txn.description == request.path_info:
        txn.description = text
    else:
        txn.note(text)
    userid = request.authenticated_userid
    if userid:
        txn.user = str(userid)


def page(request: Any, template: str, status: int = 200,
         **values: Any) -> Any:
    response = render_to_response(
        f'pyramid_zeostore:manage/templates/{template}',
        values, request=request,
    )
    response.status_int = status
    return response


def max_value(request: Any) -> int:
    """The most bytes of JSON one attribute value may take: the ready
    app's ``zeostore.max_value``, or its default in an app of its own."""
    settings = request.registry.queryUtility(IZeostoreAppSettings)
    return getattr(settings, 'max_value', AppSettings.max_value)


def value_error(request: Any, value: Any) -> tuple[int, str] | None:
    """(status, why) if ``value`` may not be stored as an attribute, by
    the JSON API's rules (:func:`~..app.content.value_problem`: 400;
    over ``zeostore.max_value``: 413), else None. Dates, which the edit
    form offers and JSON does not carry, pass."""
    if isinstance(value, datetime.date):
        return None
    problem = value_problem(value)
    if problem is not None:
        return 400, problem
    size, most = json_size(value), max_value(request)
    if size > most:
        return 413, (f'the value is {size} bytes of JSON, more than '
                     f'{most} (zeostore.max_value)')
    return None


def _field(request: Any, name: str, required: bool = True) -> str:
    value = request.POST.get(name, '')
    if not isinstance(value, str) or len(value) > MAX_FIELD:
        raise HTTPBadRequest(f'{name}: expected text of at most '
                             f'{MAX_FIELD} characters')
    if required and not value.strip():
        raise HTTPBadRequest(f'{name}: required')
    return value


# -- reads --------------------------------------------------------------------

STYLESHEET = os.path.join(os.path.dirname(__file__), 'static', 'manage.css')


def stylesheet(context: Any, request: Any) -> Any:
    """``@@manage.css``: the pages' one stylesheet."""
    return FileResponse(STYLESHEET, request, cache_max_age=3600,
                        content_type='text/css')



def child_row(request: Any, name: str, child: Any,
              folder: Folder | None = None) -> dict:
    """What the contents table shows of one child of ``folder`` (loads
    it: one of a page)."""
    if hasattr(child, '_p_activate'):
        child._p_activate()
    mtime = getattr(child, '_p_mtime', None)
    url = None
    if hasattr(child, '__parent__'):
        url = manage_url(request, child)
    elif folder is not None:  # a plain value: its page, by its name
        url = request.resource_url(folder, name, '@@manage')
    return {
        'name': name,
        'url': url,
        'type': render.type_name(child),
        'folder': isinstance(child, Folder),
        'children': len(child) if isinstance(child, Folder) else None,
        'size': getattr(child, '_p_estimated_size', None),
        'modified': _when(mtime),
    }


def _when(mtime: float | None) -> str | None:
    if not mtime:
        return None
    return datetime.datetime.fromtimestamp(
        mtime, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')


def _int(request: Any, name: str, default: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == '':
        return default
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= high:
        raise HTTPBadRequest(f'?{name}: expected a whole number from 1 '
                             f'to {high}')
    return int(raw)


def contents(context: Folder, request: Any, **extra: Any) -> Any:
    """A folder's children, a page at a time (keyset: ``?after=NAME``)."""
    size = _int(request, 'size', PAGE_SIZE, MAX_PAGE_SIZE)
    after = request.GET.get('after') or None
    try:
        found = context.page(0, size + 1, after=after)
    except FolderKeyError:
        raise HTTPBadRequest(f'?after={after!r}: no such child') from None
    rows = [child_row(request, name, child, context)
            for name, child in found[:size]]
    following = (
        manage_url(request, context, after=rows[-1]['name'], size=size)
        if len(found) > size and rows else None
    )
    return page(
        request, 'contents.jinja2', status=extra.pop('status', 200),
        context=context, crumbs=breadcrumbs(request, context), rows=rows,
        length=len(context), next_url=following,
        first_url=manage_url(request, context) if after else None,
        kinds=KINDS, **extra,
    )


def manage_view(context: Any, request: Any) -> Any:
    """``@@manage``: a folder's contents, any other object's view; with
    ``@@manage/oid/HEX`` the object of that oid."""
    if request.subpath:
        return by_oid(context, request)
    if isinstance(context, Folder):
        return contents(context, request)
    return object_page(context, request)


def by_oid(context: Any, request: Any) -> Any:
    parts = request.subpath
    if len(parts) != 2 or parts[0] != 'oid':
        raise HTTPNotFound('expected @@manage/oid/HEX')
    obj = _object_by_oid(context, parts[1])
    return object_page(obj, request)


def object_page(obj: Any, request: Any, errors: dict | None = None,
                status: int = 200) -> Any:
    """Every stored attribute of ``obj``, its oid, record and last
    change; a plain value (the context), read-only."""
    if is_value(obj):
        return value_page(obj, request, errors, status)
    if hasattr(obj, '_p_activate'):
        obj._p_activate()
    jar = getattr(obj, '_p_jar', None)
    last = None
    if jar is not None and obj._p_oid is not None:
        last = last_change(jar, obj._p_oid)
    located = getattr(obj, '__parent__', None) is not None or (
        isinstance(obj, Folder) and obj.__name__ is None)
    return page(
        request, 'object.jinja2', status=status, obj=obj,
        crumbs=breadcrumbs(request, obj) if located else [],
        path=resource_path(obj) if located else None,
        type_name=render.type_name(obj), oid=render.oid_hex(obj),
        size=getattr(obj, '_p_estimated_size', None),
        modified=_when(getattr(obj, '_p_mtime', None)), last=last,
        attributes=render.attributes(obj), errors=errors or {},
        types=list(PARSERS), oid_url=partial(oid_url, request),
        edit_url=edit_url(request, obj),
    )


def value_page(value: Any, request: Any, errors: dict | None = None,
               status: int = 200) -> Any:
    """A plain value the request traversed to (a number, text, a list...
    stored in its folder's record): shown, with no form, as it has no
    oid, history or attributes of its own."""
    names = request.traversed
    found_in = holder(request.root, names)
    crumbs = []
    if in_tree(request, found_in):
        crumbs = breadcrumbs(request, found_in) + [(names[-1], '')]
    return page(
        request, 'object.jinja2', status=status, obj=value,
        crumbs=crumbs,
        path='/' + '/'.join(map(quote_path_segment, names)),
        type_name=render.type_name(value), oid=None, size=None,
        modified=None, last=None,
        attributes=[('(value)', render.show(value), False)],
        errors=errors or {}, types=[], oid_url=partial(oid_url, request),
        edit_url=None,
    )


def in_tree(request: Any, obj: Any) -> bool:
    """Is ``obj`` reached from the root by names (the root, or in a
    folder), not only by its oid?"""
    return getattr(obj, '__parent__', None) is not None or (
        obj is request.root)


def oid_url(request: Any, hexoid: str) -> str:
    """An object's page by its oid (in hex)."""
    return manage_url(request, request.root) + f'/oid/{hexoid}'


def error_status(errors: dict, status: int) -> int:
    """A form's status: ``status`` (a 413 for a value too large) when
    that is the one thing wrong, else 400."""
    return status if len(errors) == 1 else 400


def edit_url(request: Any, obj: Any) -> str:
    if in_tree(request, obj):
        return manage_url(request, obj, 'manage-edit')
    return manage_url(request, request.root, 'manage-edit',
                      oid=render.oid_hex(obj))


def last_change(jar: Any, oid: bytes) -> dict | None:
    """When the object's record was last written, by whom and why (its
    transaction's user and note), where the storage keeps history."""
    try:
        found = history_of(jar.db(), oid, 1)
    except Exception:  # noqa: BLE001 - a storage without history
        return None
    if not found:
        return None
    entry = found[0]
    return {
        'time': _when(entry.get('time')),
        'user': _text(entry.get('user_name')),
        'note': _text(entry.get('description')),
    }


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return value or ''


#: the metadata of a transaction that the storage gives as bytes
TEXT_FIELDS = ('user_name', 'description')


def _decoded(entries: Any) -> list[dict]:
    """Storage transaction records with their user and note as text, the
    bytes that are not UTF-8 replaced (``ZODB.DB`` decodes strictly, and
    one note an old database wrote otherwise would fail the page)."""
    return [
        {**entry, **{k: _text(entry[k]) for k in TEXT_FIELDS if k in entry}}
        for entry in entries
    ]


def history_of(db: Any, oid: bytes, size: int) -> list[dict]:
    """``db.history(oid, size)``, its text decoded leniently."""
    return _decoded(db.storage.history(oid, size))


def undo_log(db: Any, first: int, last: int) -> list[dict]:
    """``db.undoLog(first, last)``, its text decoded leniently; [] if
    the storage keeps no undo log."""
    if not db.supportsUndo():
        return []
    return _decoded(db.storage.undoLog(first, last))


# -- writes -------------------------------------------------------------------


def new_name(context: Folder, name: str) -> tuple[str, str | None]:
    """``name`` checked as a new child's: (the name as stored, and what
    is wrong with it or None)."""
    try:
        name = context.validate_name(name)
    except (TypeError, ValueError) as e:
        return name, str(e)
    if name in context:
        return name, f'{name!r} exists already'
    return name, None


def add(context: Folder, request: Any) -> Any:
    """Add a folder or an item, with attributes given as JSON, checked as
    the JSON API checks them."""
    name = _field(request, 'name')
    kind = _field(request, 'kind')
    raw = _field(request, 'attributes', required=False).strip()
    errors, status = {}, 400
    name, problem = new_name(context, name)
    if problem:
        errors['name'] = problem
    if kind not in KINDS:
        errors['kind'] = 'expected folder or item'
    child = CLASSES.get(kind, Item)()
    attrs: Any = {}
    if raw:
        try:
            attrs = loads(raw)
        except json.JSONDecodeError as e:
            errors['attributes'] = f'not JSON: {e}'
        except ValueError as e:  # NaN, too many digits, too deep
            errors['attributes'] = str(e)
        else:
            if not isinstance(attrs, dict):
                errors['attributes'] = (
                    'expected a JSON object of attribute names (letters, '
                    'digits and _, not starting with _) to values')
            else:
                for key, value in attrs.items():
                    problem = attribute_problem(child, key)
                    if problem is None and (
                            found := value_error(request, value)):
                        status, problem = found[0], f'{key}: {found[1]}'
                    if problem is not None:
                        errors['attributes'] = problem
                        break
    if errors:
        return contents(context, request,
                        status=error_status(errors, status),
                        errors=errors, form=dict(request.POST))
    for key, value in attrs.items():
        setattr(child, key, value)
    context.add(name, child)
    note(request, f'added {kind} {resource_path(child)}')
    return HTTPSeeOther(manage_url(request, context))


def rename(context: Folder, request: Any) -> Any:
    old = _field(request, 'old')
    new = _field(request, 'new')
    errors = {}
    if old not in context:
        errors['rename'] = f'no child named {old!r}'
    else:
        new, problem = new_name(context, new)
        if problem:
            errors['rename'] = problem
    if errors:
        return contents(context, request, status=400, errors=errors)
    before = resource_path(context[old])
    context.rename(old, new)
    note(request, f'renamed {before} to {resource_path(context[new])}')
    return HTTPSeeOther(manage_url(request, context))


def _chosen(context: Folder, request: Any, params: Any) -> list[str]:
    names = [n for n in params.getall('name') if isinstance(n, str)]
    missing = [n for n in names if n not in context]
    if not names or missing:
        raise HTTPBadRequest(
            'choose children to delete' if not names
            else f'no child named {missing[0]!r}')
    return list(dict.fromkeys(names))


def confirm_delete(context: Folder, request: Any,
                   names: list[str] | None = None) -> Any:
    """What a delete would remove: the chosen children (``?name=``, or
    ``names``) and, for folders, how many objects they hold."""
    if names is None:
        try:
            names = _chosen(context, request, request.GET)
        except HTTPBadRequest as e:
            return contents(context, request, status=400,
                            errors={'delete': e.detail})
    rows = [child_row(request, name, context[name], context)
            for name in names]
    return page(request, 'delete.jinja2', context=context,
                crumbs=breadcrumbs(request, context), rows=rows)


def delete(context: Folder, request: Any) -> Any:
    try:
        names = _chosen(context, request, request.POST)
    except HTTPBadRequest as e:
        return contents(context, request, status=400,
                        errors={'delete': e.detail})
    paths = [resource_path(context[name]) for name in names]
    for name in names:
        context.remove(name)
    note(request, 'deleted ' + ', '.join(paths))
    return HTTPSeeOther(manage_url(request, context))


def edit(context: Any, request: Any) -> Any:
    """Set one simple attribute: a type and its text, checked as the JSON
    API checks attributes (names, nesting, numbers, size)."""
    obj = context
    oid = request.GET.get('oid')
    if oid:
        obj = _object_by_oid(context, oid)
    attr = _field(request, 'attribute')
    kind = _field(request, 'type')
    text = _field(request, 'value', required=False)
    if is_value(obj):
        return object_page(obj, request, status=400, errors={
            'attribute': f'this {render.type_name(obj)} is a plain value '
                         'stored in its folder: it has no attributes to set'})
    errors, status = {}, 400
    problem = attribute_problem(obj, attr)
    if problem is not None:
        errors['attribute'] = problem
    elif attr in render.stored_state(obj) and type(
            render.stored_state(obj)[attr]) not in render.EDITABLE:
        errors['attribute'] = (f'{attr} holds a '
                               f'{render.type_name(getattr(obj, attr))}: '
                               'not editable here')
    parser = PARSERS.get(kind)
    value: Any = None
    if parser is None:
        errors['type'] = 'expected one of ' + ', '.join(PARSERS)
    else:
        try:
            value = parser(text)
        except (ValueError, KeyError, TypeError) as e:
            errors['value'] = (f'{text[:80]!r} is not {EXPECTED[kind]}'
                               + (f': {e}' if kind in ('json', 'date')
                                  else ''))
        else:
            if kind == 'json' and not isinstance(value, (list, dict)):
                errors['value'] = 'expected a JSON list or object'
            elif (found := value_error(request, value)) is not None:
                status, errors['value'] = found
    if errors:
        return object_page(obj, request, errors=errors,
                           status=error_status(errors, status))
    try:
        setattr(obj, attr, value)
    except (ValueError, TypeError, AttributeError) as e:
        # an app class's own ``__setattr__`` refused it: undo what it did
        request.tm.abort()
        request.tm.begin()
        return object_page(obj, request, status=400, errors={
            'value': f'{render.type_name(obj)} refused it: {e}'})
    where = (resource_path(obj) if getattr(obj, '__parent__', None)
             is not None else f'oid {render.oid_hex(obj)}')
    note(request, f'set {attr} of {where}')
    if not in_tree(request, obj):
        return HTTPSeeOther(oid_url(request, render.oid_hex(obj)))
    target = 'manage-object' if isinstance(obj, Folder) else 'manage'
    return HTTPSeeOther(manage_url(request, obj, target))


def _object_by_oid(context: Any, text: str) -> Any:
    if not (1 <= len(text) <= 16 and all(
            c in '0123456789abcdefABCDEF' for c in text)):
        raise HTTPNotFound(f'{text!r} is no oid')
    try:
        obj = context._p_jar.get(p64(int(text, 16)))
        obj._p_activate()
    except (POSKeyError, KeyError):
        raise HTTPNotFound(f'no object with oid {text}') from None
    return obj


def folder_object(context: Folder, request: Any) -> Any:
    """``@@manage-object``: a folder's own attributes."""
    return object_page(context, request)
