"""Exceptions raised by pyramid_zeostore."""

from __future__ import annotations

from typing import Any

from pyramid.exceptions import ConfigurationError


class ZeostoreError(Exception):
    """Base class of every error pyramid_zeostore raises on its own."""


class ZeostoreConfigurationError(ConfigurationError, ZeostoreError):
    """A setting is missing or wrong.

    Keeps the offending ``key`` and ``value`` so callers and tests can tell
    which setting to fix; the message says what was expected.
    """

    def __init__(self, key: str, value: Any, expected: str) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f'{key}: {expected}, got {value!r}')


class DatabaseUnavailable(ZeostoreError):
    """A database could not be reached within ``zeostore.connect_timeout``.

    Raised instead of ZEO's ``ClientDisconnected`` once the bounded wait is
    over, so that it is *not* retried (retrying would multiply the wait);
    the default app renders it as HTTP 503 with ``Retry-After``.
    """

    def __init__(
        self,
        name: str,
        address: Any,
        timeout: float,
        reason: str | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.timeout = timeout
        self.reason = reason
        label = f'database {name!r}' if name else 'the primary database'
        # ``reason``: what a direct probe of the address found.
        detail = f': {reason}' if reason else ''
        hint = '' if reason else 'is runzeo running? '
        super().__init__(
            f'{label} is unavailable: no ZEO server answered at {address} '
            f'within {timeout:g}s ({hint}see zeostore.connect_timeout)'
            f'{detail}'
        )


class FolderKeyError(KeyError):
    """A name was not found in a :class:`~pyramid_zeostore.Folder`."""
