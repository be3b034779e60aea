"""``request.tm`` and ``request.zodb_conn`` without a class per request.

``config.add_request_method(..., reify=True)`` (which pyramid_tm uses for
``request.tm``) makes Pyramid derive a new Request class for every
request, the largest single cost of a small read. So includeme puts both
attributes on a Request subclass registered as the request factory, and
takes them out of the request extensions. An application's own request
factory is subclassed the same way; request methods the application adds
itself keep working as before.
"""

from __future__ import annotations

import io
from typing import Any

from pyramid.decorator import reify
from pyramid.interfaces import IRequestExtensions, IRequestFactory
from pyramid.request import Request
from pyramid.util import InstancePropertyHelper


def _properties() -> dict[str, Any]:
    """The request properties moved onto the class: name -> the callable
    it must be (an application's own ``tm`` or ``zodb_conn`` stays)."""
    from pyramid_tm import create_tm

    from .connection import zodb_conn

    return {'tm': create_tm, 'zodb_conn': zodb_conn}


def _unwrap(descriptor: Any) -> Any:
    """The function behind a ``make_property`` reify descriptor."""
    wrapped = getattr(descriptor, 'wrapped', descriptor)
    # make_property wraps non-descriptors in ``lambda this: fn(this)``
    closure = getattr(wrapped, '__closure__', None) or ()
    for cell in closure:
        if callable(cell.cell_contents):
            return cell.cell_contents
    return wrapped


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
            and not environ.get('webob.is_body_seekable')
        ):
            environ['wsgi.input'] = io.BytesIO()
            environ['CONTENT_LENGTH'] = '0'
            environ['webob.is_body_seekable'] = True
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
    extensions = registry.queryUtility(IRequestExtensions)
    factory = registry.queryUtility(IRequestFactory, default=Request)
    if not (isinstance(factory, type) and issubclass(factory, Request)):
        return
    descriptors = extensions.descriptors if extensions is not None else {}
    moved = {
        name: fn
        for name, fn in _properties().items()
        if name in descriptors
        and _unwrap(descriptors[name]) is fn
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
    for name in moved:
        del descriptors[name]
    if not (extensions.methods or extensions.descriptors):
        # Nothing left to apply: the router then skips that per request.
        registry.unregisterUtility(extensions, IRequestExtensions)
    registry.registerUtility(cls, IRequestFactory)
    properties = {name: vars(cls)[name] for name in moved}

    def ensure(request: Any) -> None:
        # A request the factory did not make (``Request.blank(...)`` for a
        # subrequest) gets the attributes as Pyramid would have given them.
        if not isinstance(request, cls):
            InstancePropertyHelper.apply_properties(request, properties)

    # Called by the read tween, and where a request's connection opens
    # (subrequests without tweens). Not a NewRequest subscriber: any
    # subscriber makes Pyramid send four events on every request.
    registry.zeostore_ensure_request = ensure


def ensure_request(registry: Any, request: Any) -> None:
    """Give ``request`` ``tm`` and ``zodb_conn`` if its class lacks them."""
    ensure = getattr(registry, 'zeostore_ensure_request', None)
    if ensure is not None:
        ensure(request)
