"""The object browser's selection, clipboard and paste.

The contents page's ``pick-form`` posts the chosen children to
``@@manage-selected`` with the button pressed (``do``): ``delete`` goes
on to the confirmation page (``@@manage-delete?name=...``), ``cut`` and
``copy`` put them on the clipboard, which lives in the session as names
and a path, never objects: ``{'op': 'cut' | 'copy', 'from': '/a',
'names': [...]}``. Its session is a signed cookie, so the clipboard is
bounded twice: :data:`MAX_NAMES` names, and what fits in the cookie
(:data:`COOKIE_ROOM`); more is refused on the same page (400).

``@@manage-paste`` (``paste-form``, on every folder's page while the
clipboard holds something) moves the cut children into the folder with
:meth:`Folder.move` or adds copies with :meth:`Folder.copy`, so the
folder events are sent and ``__parent__`` / ``__name__`` follow. Copies
whose name is taken get a free one as the ZMI's ``copy_of_`` does
(``x-copy``, ``x-copy-2``, ...); a move is refused if a name is taken,
if a folder would go into itself or its own descendant, or if the source
or a child went away meanwhile: all checked before anything changes
(409, the folder's page with the reason). A cut is pasted once (the
clipboard is emptied), a copy as often as wanted.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.location import inside
from pyramid.traversal import find_resource, resource_path

from ..exceptions import FolderKeyError
from ..folder import MAX_NAME_LENGTH, Folder
from . import views

#: the session key of the clipboard
CLIPBOARD = 'zeostore.manage.clipboard'
#: the flash queue of the object browser's messages
MESSAGES = 'zeostore.manage'
#: the most names the clipboard holds
MAX_NAMES = 1000
#: Bytes of JSON the whole session may take so that its signed cookie
#: (HMAC and base64) stays under the 4064 characters Pyramid stores and
#: browsers keep: (4064 * 3 / 4) - 64 = 2984, less a margin.
COOKIE_ROOM = 2800
#: the most objects a paste copies (the copy is one transaction)
MAX_COPY = 10_000
#: a confirmation URL longer than this (proxies refuse long request
#: lines: nginx at 8 KB) is answered in place instead of redirected to
MAX_URL = 4000
OPS = ('cut', 'copy')
#: the prefix of a flash queue's session key (Pyramid's session)
FLASHES = '_f_'
MANAGE = {'permission': 'manage'}


def includeme(config: Any) -> None:
    """Register the selection's and the clipboard's forms."""
    config.add_view(selected, name='manage-selected', context=Folder,
                    request_method='POST', **MANAGE)
    config.add_view(paste, name='manage-paste', context=Folder,
                    request_method='POST', **MANAGE)


class Refused(Exception):
    """A form refused: its status and what to say on the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def refused_page(context: Folder, request: Any, key: str,
                 refusal: Refused) -> Any:
    """The folder's contents page with the reason, and its status."""
    return views.contents(context, request, status=refusal.status,
                          errors={key: refusal.message})


def shown(names: list[str], most: int = 5) -> str:
    """The first ``most`` names, quoted, and how many more."""
    text = ', '.join(json.dumps(n, ensure_ascii=False) for n in names[:most])
    if len(names) > most:
        text += f' and {len(names) - most} more'
    return text


def children(count: int) -> str:
    return f'{count} child' if count == 1 else f'{count} children'


def session_size(request: Any, **changes: Any) -> int:
    """Bytes of JSON the session would take with ``changes``, as
    Pyramid's cookie session writes it: ``[accessed, created, state]``."""
    state = dict(request.session)
    state.update(changes)
    return len(json.dumps([2 ** 31, time.time(), state], default=str))


def flash(request: Any, message: str) -> None:
    """Show ``message`` on the next contents page (a flash message), cut
    short if the session cookie has no room for all of it."""
    session = request.session
    key = FLASHES + MESSAGES
    queued = list(session.get(key, []))
    for text in (message, message[:100] + '…'):
        if session_size(request, **{key: [*queued, text]}) <= COOKIE_ROOM:
            session.flash(text, MESSAGES)
            return


# -- the selection ------------------------------------------------------------


def selected(context: Folder, request: Any) -> Any:
    """``@@manage-selected``: what to do with the chosen children."""
    try:
        do = request.POST.get('do')
        if do not in ('delete', *OPS):
            raise Refused(400, 'expected a button: Cut, Copy or Delete…')
        names = chosen(context, request)
        if do == 'delete':
            return to_confirmation(context, request, names)
        return to_clipboard(context, request, do, names)
    except Refused as e:
        return refused_page(context, request, 'selection', e)


def chosen(context: Folder, request: Any) -> list[str]:
    """The names chosen (each once, in the page's order), all children."""
    names = [n for n in request.POST.getall('name') if isinstance(n, str)]
    names = list(dict.fromkeys(names))
    if not names:
        raise Refused(400, 'choose children first (tick their boxes)')
    if len(names) > MAX_NAMES:
        raise Refused(400, f'{len(names)} children chosen: at most '
                           f'{MAX_NAMES} at once (the clipboard holds no '
                           'more); choose fewer')
    missing = [n for n in names if n not in context]
    if missing:
        raise Refused(409, f'no child named {shown(missing)} (gone '
                           'meanwhile?): nothing was done')
    return names


def to_confirmation(context: Folder, request: Any, names: list[str]) -> Any:
    url = views.manage_url(request, context, 'manage-delete', name=names)
    if len(url) > MAX_URL:
        # Too long a URL for some proxies: confirm here instead.
        return views.confirm_delete(context, request, names)
    return HTTPSeeOther(url)


def to_clipboard(context: Folder, request: Any, op: str,
                 names: list[str]) -> Any:
    source = resource_path(context)
    clip = {'op': op, 'from': source, 'names': names}
    verb = 'cut' if op == 'cut' else 'copied'
    message = (f'{children(len(names))} {verb} from {source}: paste them '
               'into a folder')
    key = FLASHES + MESSAGES
    queued = request.session.get(key, [])
    size = session_size(request, **{CLIPBOARD: clip,
                                    key: [*queued, message]})
    if size > COOKIE_ROOM:
        need = len(json.dumps(names))
        raise Refused(400, f'{children(len(names))} chosen: their names '
                           f'take {need} bytes, more than the clipboard '
                           'holds (it lives in the session cookie, about '
                           f'{COOKIE_ROOM} bytes in all); choose fewer')
    request.session[CLIPBOARD] = clip
    flash(request, message)
    return HTTPSeeOther(views.manage_url(request, context))


# -- paste --------------------------------------------------------------------


def clipboard(request: Any) -> dict | None:
    """The clipboard held in the session, or None (a malformed one, from
    an older version, is dropped)."""
    session = request.session
    clip = session.get(CLIPBOARD)
    if clip is None:
        return None
    try:
        op, source, names = clip['op'], clip['from'], clip['names']
        valid = (op in OPS and isinstance(source, str)
                 and source.startswith('/') and isinstance(names, list)
                 and 0 < len(names) <= MAX_NAMES
                 and all(isinstance(n, str) for n in names))
    except (KeyError, TypeError):
        valid = False
    if not valid:
        del session[CLIPBOARD]
        return None
    return clip


def paste(context: Folder, request: Any) -> Any:
    """``@@manage-paste``: move or copy the clipboard's children here;
    ``do=clear`` empties the clipboard."""
    do = request.POST.get('do', 'paste')
    if do == 'clear':
        if request.session.pop(CLIPBOARD, None) is not None:
            flash(request, 'The clipboard is empty now.')
        return HTTPSeeOther(views.manage_url(request, context))
    try:
        if do != 'paste':
            raise Refused(400, 'expected a button: Paste or Empty '
                               'clipboard')
        clip = clipboard(request)
        if clip is None:
            raise Refused(400, 'the clipboard is empty: cut or copy '
                               'children first')
        source = source_folder(request, clip['from'])
        names = clip['names']
        missing = [n for n in names if n not in source]
        if missing:
            raise Refused(409, f'{shown(missing)} no longer in '
                               f'{clip["from"]} (moved or deleted '
                               'meanwhile): nothing was pasted')
        if clip['op'] == 'cut':
            message = move_here(context, request, source, names)
            del request.session[CLIPBOARD]
        else:
            message = copy_here(context, request, source, names)
    except Refused as e:
        return refused_page(context, request, 'paste', e)
    flash(request, message)
    return HTTPSeeOther(views.manage_url(request, context))


def source_folder(request: Any, path: str) -> Folder:
    """The folder at ``path`` (as ``resource_path`` made it), if it is
    one and the user may manage it."""
    try:
        source = find_resource(request.root, path)
    except KeyError:
        source = None
    if not isinstance(source, Folder):
        raise Refused(409, f'{path} no longer exists (moved or deleted '
                           'meanwhile): nothing was pasted; empty the '
                           'clipboard')
    if not request.has_permission('manage', source):
        raise Refused(403, f'you may not manage {path}: nothing was '
                           'pasted')
    return source


def move_here(context: Folder, request: Any, source: Folder,
              names: list[str]) -> str:
    """Move ``names`` from ``source`` into ``context``, or refuse before
    moving any; the message to show."""
    if source is context:
        raise Refused(409, f'{shown(names)} already in this folder: paste '
                           'them into another one')
    taken = [n for n in names if n in context]
    if taken:
        raise Refused(409, f'{shown(taken)}: a child of that name exists '
                           'here already; rename or delete it first. '
                           'Nothing was moved')
    objects = [source[n] for n in names]
    around = [n for n, obj in zip(names, objects, strict=True)
              if inside(context, obj)]
    if around:
        raise Refused(409, f'cannot move {shown(around)} into itself or '
                           'its own descendant: nothing was moved')
    paths = [resource_path(source, n) for n in names]
    run(request, lambda: [source.move(n, context) for n in names])
    views.note(request, f'moved {joined(paths)} to '
                        f'{resource_path(context)}')
    return (f'Moved {children(len(names))} from {resource_path(source)} '
            'here.')


def copy_here(context: Folder, request: Any, source: Folder,
              names: list[str]) -> str:
    """Copy ``names`` from ``source`` into ``context``, under free names;
    the message to show."""
    count = 0
    for n in names:
        count += subtree_size(source[n], MAX_COPY - count)
        if count > MAX_COPY:
            raise Refused(409, f'{shown(names)} hold more than {MAX_COPY} '
                               'objects: too many to copy in one request. '
                               'Nothing was copied')
    newnames = free_names(context, names)
    paths = [resource_path(source, n) for n in names]
    run(request, lambda: [source.copy(n, context, new)
                          for n, new in zip(names, newnames, strict=True)])
    renamed = [new for n, new in zip(names, newnames, strict=True)
               if n != new]
    views.note(request, f'copied {joined(paths)} to '
                        f'{resource_path(context)}'
               + (f' as {", ".join(newnames)}' if renamed else ''))
    message = f'Copied {children(len(names))} here'
    if renamed:
        message += f', under new names: {shown(renamed)}'
    return message + '.'


def run(request: Any, change: Any) -> None:
    """Make the change; if the folder refuses it half-way, undo what it
    did (a savepoint) and refuse the form."""
    savepoint = request.tm.savepoint()
    try:
        change()
    except (FolderKeyError, ValueError, TypeError) as e:
        savepoint.rollback()
        reason = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise Refused(409, f'{reason}: nothing was changed') from None


def joined(paths: list[str], most: int = 50) -> str:
    text = ', '.join(paths[:most])
    if len(paths) > most:
        text += f' and {len(paths) - most} more'
    return text


def free_names(context: Folder, names: list[str]) -> list[str]:
    """A free name in ``context`` for each of ``names``: the name itself,
    else ``name-copy``, ``name-copy-2``, ... (trimmed to fit)."""
    taken: set[str] = set()
    found = []
    for name in names:
        for n in range(1, MAX_NAMES + 2):
            suffix = '' if n == 1 else '-copy' if n == 2 else f'-copy-{n - 1}'
            candidate = name[:MAX_NAME_LENGTH - len(suffix)] + suffix
            if candidate not in context and candidate not in taken:
                break
        else:
            raise Refused(409, f'no free name for a copy of {shown([name])}')
        taken.add(candidate)
        found.append(candidate)
    return found


def subtree_size(obj: Any, most: int) -> int:
    """How many objects ``obj`` is (1) and holds, counted through its
    folders, up to a little over ``most``: loads their buckets, not their
    other children (a ghost's class is known without loading it)."""
    count = 1
    stack = [obj] if isinstance(obj, Folder) else []
    while stack and count <= most:
        folder = stack.pop()
        count += len(folder)
        if count > most:
            break
        stack.extend(child for child in folder.values()
                     if isinstance(child, Folder))
    return count
