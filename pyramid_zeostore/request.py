"""``request.tm`` and ``request.zodb_conn`` without a class per request.

``config.add_request_method(..., reify=True)`` (which pyramid_tm uses for
``request.tm``) makes Pyramid derive a new Request class for every
request, the largest single cost of a small read. So includeme puts both
attributes on a Request subclass registered as the request factory, and
takes them out of the request extensions (:mod:`.compat`). An
application's own request factory is subclassed the same way; request
methods the application adds itself keep working as before.
"""

from __future__ import annotations

import io
from typing import Any, Callable

import transaction
from pyramid.decorator import reify
from pyramid.interfaces import IRequestFactory
from pyramid.request import Request
from pyramid_tm import create_tm

from . import compat
from .connection import zodb_conn
from .environ import ROUTED
from .interfaces import IRequestProperties


def manager_hook(request: Any) -> transaction.TransactionManager:
    """``tm.manager_hook`` (includeme's default): ``request.tm``.

    A request the router's tweens handle gets an explicit manager of its
    own, begun and ended by pyramid_tm (or by a fast read). Any other
    request, made by ``pyramid.scripting.prepare``, ``pyramid.paster.
    bootstrap``, pshell, a script or a test fixture, gets the thread's
    ``transaction.manager``, as pyramid_tm without a hook would give it
    and as code written for pyramid_zodbconn expects: its changes are
    saved by ``transaction.commit()`` or ``request.tm.commit()``.
    """
    if request.environ.get(ROUTED):
        return transaction.TransactionManager(explicit=True)
    return transaction.manager


#: The request properties moved onto the class: name -> the function it
#: must be (an application's own ``tm`` or ``zodb_conn`` stays).
PROPERTIES: dict[str, Callable[[Any], Any]] = {
    'tm': create_tm,
    'zodb_conn': zodb_conn,
}


class BodylessRequestMixin:
    """``make_body_seekable`` without reading the input of a request that
    has no body.

    pyramid_retry calls it before every request. A request with neither
    ``Content-Length`` nor ``Transfer-Encoding`` has no body (RFC 9112,
    6.3), but webob, when the server says its input is terminated (as
    gunicorn does), reads it to find out: this sets the empty body as
    webob would have, without the read.
    """

    def make_body_seekable(self) -> None:
        environ = self.environ  # type: ignore[attr-defined]
        if (
            environ.get('CONTENT_LENGTH') in (None, '', '0')
            and 'HTTP_TRANSFER_ENCODING' not in environ
            and not self.is_body_seekable  # type: ignore[attr-defined]
        ):
            # The WSGI keys themselves: webob's setters cost ~1 us here.
            environ['wsgi.input'] = io.BytesIO()
            environ['CONTENT_LENGTH'] = '0'
            self.is_body_seekable = True  # type: ignore[attr-defined]
            return
        super().make_body_seekable()  # type: ignore[misc]


class ZeostoreRequest(BodylessRequestMixin, Request):
    """The default request class when pyramid_zeostore is included."""


def _reify(name: str, fn: Any) -> reify:
    """``reify`` caches under the function's name: give it ``name``."""

    def prop(request: Any) -> Any:
        return fn(request)

    prop.__name__ = name
    prop.__doc__ = fn.__doc__
    return reify(prop)


def install(registry: Any) -> None:
    """Config action: move ``tm``/``zodb_conn`` onto the request class.

    Does nothing if the application's request factory is not a Request
    class (the extensions then stay, as Pyramid would apply them).
    """
    factory = registry.queryUtility(IRequestFactory, default=Request)
    if not (isinstance(factory, type) and issubclass(factory, Request)):
        return
    moved = {
        name: fn
        for name, fn in PROPERTIES.items()
        if compat.request_property(registry, name) is fn
    }
    if not moved:
        return
    base = ZeostoreRequest if factory is Request else factory
    bases = (base,)
    if not issubclass(base, BodylessRequestMixin):
        bases = (BodylessRequestMixin, base)
    cls = type(base.__name__, bases, {
        '__module__': base.__module__,
        **{name: _reify(name, fn) for name, fn in moved.items()},
    })
    compat.remove_request_properties(registry, moved)
    registry.registerUtility(cls, IRequestFactory)

    def ensure(request: Any) -> None:
        # A request the factory did not make (``Request.blank(...)`` for a
        # subrequest) gets the attributes as Pyramid would have given them.
        if not isinstance(request, cls):
            for name, fn in moved.items():
                request.set_property(fn, name, reify=True)

    # Called by the read tween, and where a request's connection opens
    # (subrequests without tweens). Not a NewRequest subscriber: any
    # subscriber makes Pyramid send four events on every request.
    registry.registerUtility(ensure, IRequestProperties)
