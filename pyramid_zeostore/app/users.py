"""The ready app's users: stored in the database beside the app root.

Like Zope's ``acl_users`` they live outside the tree the API serves
(``zodb_root['zeostore_users']``), so no request can list or change
them; ``pzeo adduser``/``deluser``/``users`` do. Passwords are kept as
argon2id hashes only.
"""

from __future__ import annotations

import time
import unicodedata
from typing import Any, Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from BTrees.OOBTree import OOBTree
from persistent import Persistent

from ..root import bootstrap

USERS_KEY = 'zeostore_users'
#: Each role and what it may do; ``manage`` is the object browser's.
ROLES = {
    'viewer': frozenset({'view'}),
    'editor': frozenset({'view', 'edit'}),
    'manager': frozenset({'view', 'edit', 'manage'}),
}
DEFAULT_ROLE = 'manager'
MAX_NAME = 64
#: Longer passwords would only make argon2 work longer.
MAX_PASSWORD = 1024

hasher = PasswordHasher()
#: Verified against when the user is unknown: the same work either way,
#: so the time taken does not tell which names exist.
_DUMMY = hasher.hash('not a password of anyone')


class User(Persistent):
    """One user: a name, an argon2 hash and a role."""

    def __init__(self, name: str, password_hash: str, role: str) -> None:
        self.name = name
        self.password_hash = password_hash
        self.role = role
        self.created = time.time()

    @property
    def permissions(self) -> frozenset[str]:
        return ROLES.get(self.role, frozenset())


class Users(Persistent):
    """The users by name (a BTree: one small record per user)."""

    def __init__(self) -> None:
        self._users: Any = OOBTree()

    def __len__(self) -> int:
        return len(self._users)

    def __iter__(self) -> Iterator[User]:
        return iter(self._users.values())

    def get(self, name: str) -> User | None:
        return self._users.get(name)

    def add(self, name: str, password: str, role: str = DEFAULT_ROLE) -> User:
        """Add ``name`` or replace its password and role."""
        name = check_name(name)
        check_password(password)
        if role not in ROLES:
            raise ValueError(
                f'role must be one of {", ".join(ROLES)}, not {role!r}'
            )
        user = self._users.get(name)
        if user is None:
            user = User(name, hash_password(password), role)
            self._users[name] = user
        else:
            user.password_hash = hash_password(password)
            user.role = role
        return user

    def remove(self, name: str) -> None:
        del self._users[name]

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (in about the same
        time whether the name exists or not)."""
        user = self._users.get(name) if isinstance(name, str) else None
        if user is None or not check_hash(user.password_hash, password):
            if user is None:
                check_hash(_DUMMY, password)
            return None
        return user


def check_name(name: Any) -> str:
    """A user name: 1-64 printable characters, NFC, no ``:`` (HTTP Basic
    ends the name there) and no spaces at either end."""
    if not isinstance(name, str) or not name:
        raise ValueError('a user name must be a non-empty text')
    name = unicodedata.normalize('NFC', name)
    if len(name) > MAX_NAME:
        raise ValueError(f'a user name has at most {MAX_NAME} characters')
    if ':' in name or name != name.strip() or not name.isprintable():
        raise ValueError(
            'a user name must be printable, without ":" and without '
            'spaces at either end'
        )
    return name


def check_password(password: Any) -> None:
    if not isinstance(password, str) or not password:
        raise ValueError('the password must not be empty')
    if len(password) > MAX_PASSWORD:
        raise ValueError(
            f'the password has at most {MAX_PASSWORD} characters'
        )


def hash_password(password: str) -> str:
    return hasher.hash(password)


def check_hash(password_hash: str, password: Any) -> bool:
    """Is ``password`` the one ``password_hash`` was made from?"""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def find_users(zodb_root: Any) -> Users | None:
    """The users of the database whose root is ``zodb_root``, if any were
    ever added (reads only)."""
    return zodb_root.get(USERS_KEY)


def users_for_change(zodb_root: Any) -> Users:
    """The users, made on first use (for the commands that add users)."""
    users = zodb_root.get(USERS_KEY)
    if users is None:
        users = zodb_root[USERS_KEY] = Users()
    return users


def add_user(
    db: Any, name: str, password: str, role: str = DEFAULT_ROLE
) -> None:
    """Add (or change) a user of the ZODB ``db`` in a transaction of its
    own: what ``pzeo adduser`` does, for scripts and tests."""
    bootstrap(
        db, lambda root: users_for_change(root).add(name, password, role)
    )
