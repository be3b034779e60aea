"""The ready app's session: a cookie signed with the app's secret.

The secret is ``zeostore.secret``, or the contents of
``zeostore.secret_file``, which is made (random, mode 0600) the first
time, for development (``development.ini`` keeps it in ``var/``). The
cookie is ``HttpOnly`` and ``SameSite=Lax``, and ``Secure`` on https
requests (or always, with ``zeostore.secure_cookies = true`` behind a
proxy that ends TLS).
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Callable

from pyramid.session import SignedCookieSessionFactory

from ..exceptions import ZeostoreConfigurationError as Bad
from .security import SESSION_COOKIE
from .settings import MASKED, MIN_SECRET, AppSettings


def load_secret(settings: AppSettings) -> str | None:
    """The session secret, or None if the ini configures none."""
    if settings.secret:
        return settings.secret
    path = settings.secret_file
    if not path:
        return None
    try:
        return _read_or_make(path)
    except OSError as e:
        raise Bad(
            'zeostore.secret_file', path,
            f'expected a file this user can read, or make ({e.strerror})',
        ) from None


def _read_or_make(path: str) -> str:
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), 0o700,
                    exist_ok=True)
        # Written aside and linked into place: several processes starting
        # at once all end with the one that got there first.
        tmp = f'{path}.{os.getpid()}.tmp'
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(secrets.token_urlsafe(48) + '\n')
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    with open(path) as f:
        secret = f.read().strip()
    if len(secret) < MIN_SECRET:
        raise Bad(
            'zeostore.secret_file', MASKED,
            f'expected a file holding at least {MIN_SECRET} random '
            f'characters ({path} holds {len(secret)})',
        )
    return secret


def session_factory(settings: AppSettings, secret: str) -> Callable:
    """A session factory: the signed cookie, ``Secure`` when it should."""
    options = dict(
        cookie_name=SESSION_COOKIE,
        httponly=True,
        samesite='Lax',
        timeout=settings.session_timeout,
        reissue_time=max(settings.session_timeout // 10, 1),
    )
    plain = SignedCookieSessionFactory(secret, secure=False, **options)
    secure = SignedCookieSessionFactory(secret, secure=True, **options)

    def factory(request: Any) -> Any:
        if settings.secure_cookies or request.scheme == 'https':
            return secure(request)
        return plain(request)

    return factory
