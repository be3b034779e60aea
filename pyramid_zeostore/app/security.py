"""Who is asking, and what they may do: the ready app's security policy.

Two ways in: HTTP Basic (API clients: ``curl -u name:password``) and a
session cookie signed with ``zeostore.secret`` (browsers, after the login
form). Users and their roles are in the database (:mod:`.users`).
Anonymous requests may read unless ``zeostore.anonymous = none``; nobody
may write while no user exists, so a new app is read-only.

argon2 is slow on purpose (about 0.1 s a check); a verified name and
password is remembered in memory (as a keyed digest, never the password)
until the user's hash changes, so an authenticated request costs little
more than an anonymous one. Failed logins are counted per name and
address and per address, in bounded memory, and refused for a while once
too many.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pyramid.request import RequestLocalCache
from pyramid.security import Allowed, Denied
from transaction.interfaces import NoTransaction

from ..connection import get_connection
from .settings import AppSettings
from .users import Users, find_users

log = logging.getLogger(__name__)

SESSION_KEY = 'zeostore.user'
SESSION_COOKIE = 'zeostore_session'
#: Why this request's credentials were not taken (environ key):
#: ('bad', name), ('malformed', None) or ('throttled', seconds).
AUTH_FAILURE = 'zeostore.auth_failure'
#: What finding the identity raised when pyramid_tm first asked.
IDENTITY_ERROR = 'zeostore.identity_error'
NO_USERS = (
    'This app is read-only: it has no users yet. Add one with '
    '"pzeo adduser {ini} NAME" (it asks for the password), then log in.'
)
LOG_IN = (
    'Log in to change anything: HTTP Basic (curl -u NAME ...) or the '
    'form at /@@login.'
)


class ReadOnly(Denied):
    """Denied because the app has no users yet."""


@dataclass(frozen=True)
class Identity:
    """The user a request acts for, and how it proved it."""

    name: str
    role: str
    permissions: frozenset
    via: str  # 'basic' or 'session'


def basic_credentials(request: Any) -> tuple[str, str] | None | bool:
    """``(name, password)`` from an ``Authorization: Basic`` header; None
    if there is no such header; False if it is not valid Basic."""
    header = request.headers.get('Authorization')
    if not header:
        return None
    scheme, _, data = header.strip().partition(' ')
    if scheme.lower() != 'basic':
        return None
    try:
        text = base64.b64decode(data.strip(), validate=True)
        name, sep, password = text.decode('utf-8').partition(':')
    except (UnicodeError, binascii.Error, ValueError):
        return False
    return (name, password) if sep else False


class VerifiedCache:
    """Name and password pairs argon2 accepted, by a digest keyed with
    this process's random key, each with the hash it matched: a hit
    counts only while the user's stored hash is the same. Bounded; the
    least recently used go first."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._key = os.urandom(32)
        self._data: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def digest(self, name: str, password: str) -> bytes:
        text = f'{name}\0{password}'.encode('utf-8', 'surrogatepass')
        return hmac.new(self._key, text, hashlib.sha256).digest()

    def known(self, digest: bytes, password_hash: str) -> bool:
        with self._lock:
            found = self._data.get(digest)
            if found is not None:
                self._data.move_to_end(digest)
        return found is not None and hmac.compare_digest(found, password_hash)

    def add(self, digest: bytes, password_hash: str) -> None:
        with self._lock:
            self._data[digest] = password_hash
            self._data.move_to_end(digest)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class Throttle:
    """Failed logins per key in a sliding window, in bounded memory.

    :meth:`wait` says how long a key must still wait (0: it may try).
    The oldest keys are forgotten first when there are more than
    ``size``.
    """

    def __init__(self, window: float, size: int = 10_000) -> None:
        self.window = window
        self.size = size
        self._failures: OrderedDict[Any, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, key: Any, limit: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._recent(key, now)
            if len(times) < limit:
                return 0.0
            return max(times[-limit] + self.window - now, 0.001)

    def failed(self, key: Any, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times[-64:]
            self._failures.move_to_end(key)
            while len(self._failures) > self.size:
                self._failures.popitem(last=False)

    def forget(self, key: Any) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: Any, now: float) -> list[float]:
        since = now - self.window
        return [t for t in self._failures.get(key, ()) if t > since]


def annotate(request: Any, name: str) -> None:
    """Record ``name`` as the user of the request's transaction (undo log,
    history), as pyramid_tm's ``tm.annotate_user`` would: the ready app
    turns that off, and learns who asks inside the transaction, when a
    write's permission is checked."""
    with contextlib.suppress(AttributeError, NoTransaction):
        request.tm.get().user = name


class SecurityPolicy:
    """The ready app's Pyramid security policy (see the module)."""

    def __init__(self, settings: AppSettings, secret: str | None,
                 ini: str | None = None) -> None:
        self.settings = settings
        self.secret = secret
        self.ini = ini or 'YOUR.ini'
        self.cache = VerifiedCache()
        self.throttle = Throttle(settings.login_window)
        # Pyramid asks the policy each time: once per request is enough
        self._identities = RequestLocalCache(self._identity_of)

    # -- who

    def users(self, request: Any) -> Users | None:
        return find_users(get_connection(request).root())

    def identity(self, request: Any) -> Identity | None:
        return self._identities.get_or_create(request)

    def _identity_of(self, request: Any) -> Identity | None:
        failed = request.environ.pop(IDENTITY_ERROR, None)
        if failed is not None:
            raise failed
        credentials = basic_credentials(request)
        if credentials is False:
            request.environ[AUTH_FAILURE] = ('malformed', None)
            return None
        if credentials is not None:
            user = self.check_password(request, *credentials)
            return None if user is None else self._identity(user, 'basic')
        if self.secret is None or SESSION_COOKIE not in request.cookies:
            return None
        found = request.session.get(SESSION_KEY)
        if not isinstance(found, list) or len(found) != 2:
            return None
        users = self.users(request)
        user = users.get(found[0]) if users is not None else None
        if user is None or not hmac.compare_digest(
            self.fingerprint(user.password_hash), str(found[1])
        ):
            return None  # deleted, or the password changed since
        return self._identity(user, 'session')

    def check_password(self, request: Any, name: str, password: str) -> Any:
        """The user whose name and password these are, or None (the reason
        in ``request.environ[AUTH_FAILURE]``); counts failures."""
        address = request.remote_addr or '-'
        limit = self.settings.login_attempts
        wait = max(
            self.throttle.wait((name, address), limit),
            self.throttle.wait(address, limit * 4),
        )
        if wait:
            request.environ[AUTH_FAILURE] = ('throttled', wait)
            return None
        users = self.users(request)
        stored = users.get(name) if users is not None else None
        digest = self.cache.digest(name, password)
        if stored is not None and self.cache.known(
            digest, stored.password_hash
        ):
            return stored
        user = users.verify(name, password) if users is not None else None
        if user is None:
            self.throttle.failed((name, address))
            self.throttle.failed(address)
            log.warning('failed login for user %r from %s', name, address)
            request.environ[AUTH_FAILURE] = ('bad', name)
            return None
        self.cache.add(digest, user.password_hash)
        self.throttle.forget((name, address))
        return user

    def _identity(self, user: Any, via: str) -> Identity:
        return Identity(user.name, user.role, user.permissions, via)

    def fingerprint(self, password_hash: str) -> str:
        """What the session keeps of the user's hash: a session ends when
        the password changes."""
        return hmac.new(
            (self.secret or '').encode(), password_hash.encode(),
            hashlib.sha256,
        ).hexdigest()[:32]

    def authenticated_userid(self, request: Any) -> str | None:
        """The user's name, or None. pyramid_tm asks before anything else
        (for the transaction's user), outside the exception views: if the
        database cannot say now, the view's own permission check asks
        again, and its error (a 503) is rendered there."""
        try:
            identity = request.identity
        except Exception as e:  # noqa: BLE001 - raised again where handled
            request.environ[IDENTITY_ERROR] = e  # not waited for twice
            return None
        return None if identity is None else identity.name

    # -- what

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        if permission == 'view' and self.settings.anonymous == 'read':
            return Allowed('anyone may read')
        identity = request.identity
        if identity is None:
            users = self.users(request)
            if not users:
                return ReadOnly(NO_USERS.format(ini=self.ini))
            return Denied(LOG_IN)
        if permission in identity.permissions:
            if permission != 'view':
                annotate(request, identity.name)
            return Allowed(f'{identity.name} is {identity.role}')
        return Denied(
            f'{identity.name} ({identity.role}) may not {permission} here.'
        )

    # -- the session

    def remember(self, request: Any, userid: str, **kw: Any) -> list:
        users = self.users(request)
        user = users.get(userid) if users is not None else None
        if user is not None:
            request.session[SESSION_KEY] = [
                user.name, self.fingerprint(user.password_hash),
            ]
        self._identities.clear(request)
        return []

    def forget(self, request: Any, **kw: Any) -> list:
        if self.secret is not None:
            request.session.invalidate()
        self._identities.clear(request)
        return []
