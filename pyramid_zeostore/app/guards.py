"""The ready app's outer guard: WSGI middleware around the router.

It runs before anything reads the request (pyramid_retry copies the body
before the first tween), so it is where the limits go:

- a ``Host`` that is not one of ``zeostore.trusted_hosts``: 400 (links
  and ``Location`` headers are built from it; the health and Prometheus
  paths, which build none, answer any host);
- a body over ``zeostore.max_body``: 413, from ``Content-Length`` before
  a byte is read, or once a chunked body passes the limit;
- and on every response, the headers that keep pages from being sniffed,
  framed, scripted or leaking their URL: ``X-Content-Type-Options``,
  ``X-Frame-Options``, ``Content-Security-Policy``, ``Referrer-Policy``.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from pyramid.httpexceptions import HTTPBadRequest, HTTPRequestEntityTooLarge
from pyramid.request import Request

from ..errorviews import respond
from .settings import AppSettings

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = (
    ('X-Content-Type-Options', 'nosniff'),
    ('X-Frame-Options', 'DENY'),
    ('Content-Security-Policy', CSP),
    ('Referrer-Policy', 'same-origin'),
)


def host_name(host: str) -> str | None:
    """The name in a ``Host`` header (lower case, no port, no brackets),
    or None if it is not one."""
    try:
        parts = urlsplit('//' + host)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return None
    name = parts.hostname
    if (
        not name or parts.path or parts.query or parts.fragment
        or parts.username or any(c.isspace() for c in host)
        or '#' in host
    ):
        return None
    return name


def host_trusted(host: str, trusted: Iterable[str]) -> bool:
    name = host_name(host)
    if name is None:
        return False
    for pattern in trusted:
        if pattern == '*' or name == pattern or (
            pattern.startswith('.') and (
                name.endswith(pattern) or name == pattern[1:]
            )
        ):
            return True
    return False


class Guard:
    """``Guard(router, settings, open_paths)``: see the module."""

    def __init__(self, app: Any, settings: AppSettings,
                 open_paths: Iterable[str | None] = ()) -> None:
        self.app = app
        self.registry = getattr(app, 'registry', None)
        self.settings = settings
        self.open_paths = frozenset(p for p in open_paths if p)

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        def with_headers(status: str, headers: list, exc_info=None) -> Any:
            have = {name.lower() for name, _ in headers}
            headers.extend(h for h in HEADERS if h[0].lower() not in have)
            return start_response(status, headers, exc_info)

        refusal = self.refusal(environ)
        if refusal is not None:
            return refusal(environ, with_headers)
        return self.app(environ, with_headers)

    def refusal(self, environ: dict) -> Any:
        """The response refusing this request, or None (may read a
        chunked body, up to the limit, into memory)."""
        request = Request(environ)
        if environ.get('PATH_INFO') not in self.open_paths and not (
            host_trusted(request.host, self.settings.trusted_hosts)
        ):
            return respond(
                request, HTTPBadRequest,
                f'Unknown Host {request.host!r}: this site answers to '
                f'{", ".join(self.settings.trusted_hosts)} '
                '(zeostore.trusted_hosts).',
            )
        limit = self.settings.max_body
        too_large = respond(
            request, HTTPRequestEntityTooLarge,
            f'The request body is larger than {limit} bytes '
            '(zeostore.max_body); nothing was done.',
        )
        length = environ.get('CONTENT_LENGTH')
        if length:
            try:
                return too_large if int(length) > limit else None
            except ValueError:
                return respond(
                    request, HTTPBadRequest, 'Content-Length is not a number.'
                )
        if 'chunked' in environ.get('HTTP_TRANSFER_ENCODING', '').lower() or (
            environ.get('wsgi.input_terminated')
        ):
            body = environ['wsgi.input'].read(limit + 1)
            if len(body) > limit:
                return too_large
            environ['wsgi.input'] = io.BytesIO(body)
            environ['CONTENT_LENGTH'] = str(len(body))
            environ.pop('HTTP_TRANSFER_ENCODING', None)
        return None
