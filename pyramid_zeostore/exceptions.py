"""Every error pyramid_zeostore raises, under one base: ZeostoreError.

Catch :class:`ZeostoreError` for all of them. Each class also keeps the
standard base its callers catch (``ConfigurationError``, ``ValueError``,
``KeyError``), so code written against those goes on working.
"""

from __future__ import annotations

from typing import Any

from pyramid.exceptions import (
    ConfigurationError,
    ConfigurationExecutionError,
)
from pyramid_retry import IRetryableError
from zope.interface import implementer


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


class URIParameterError(ZeostoreError, ValueError):
    """A ``zeo://`` URI has a parameter that cannot work; says the fix."""

    def __init__(self, uri: str, name: str, fix: str) -> None:
        self.uri = uri
        self.name = name
        super().__init__(f'parameter {name!r} is not supported: {fix}')


class TLSFileError(ZeostoreError, ValueError):
    """A certificate, key or CA file of a ``zeo://`` URI is unusable."""


class DatabaseUnavailable(ZeostoreError):
    """A database could not be reached within ``zeostore.connect_timeout``.

    Raised instead of ZEO's ``ClientDisconnected`` once the bounded wait is
    over, so that it is *not* retried (retrying would multiply the wait);
    the default app renders it as HTTP 503 with ``Retry-After``. ``zeo``
    is False for a database that is not a ZEO client (RelStorage's SQL
    server): its own driver bounds the wait.
    """

    def __init__(
        self,
        name: str,
        address: Any,
        timeout: float,
        reason: str | None = None,
        zeo: bool = True,
    ) -> None:
        self.name = name
        self.address = address
        self.timeout = timeout
        self.reason = reason
        self.zeo = zeo
        label = f'database {name!r}' if name else 'the primary database'
        # ``reason``: what a direct probe of the address found.
        detail = f': {reason}' if reason else ''
        if zeo:
            hint = '' if reason else 'is runzeo running? '
            message = (
                f'{label} is unavailable: no ZEO server answered at '
                f'{address} within {timeout:g}s ({hint}see '
                f'zeostore.connect_timeout){detail}'
            )
        else:
            message = (
                f'{label} is unavailable: its database server at '
                f'{address} did not answer{detail}'
            )
        super().__init__(message)

    #: could a change have reached the server before it went away?
    may_have_saved = False

    def again(self) -> DatabaseUnavailable:
        """A new exception with the same details (to raise once more)."""
        return type(self)(
            self.name, self.address, self.timeout, self.reason, self.zeo
        )


class CommitOutcomeUnknown(DatabaseUnavailable):
    """A commit's vote or finish did not come back (the ZEO server did
    not answer within ``zeostore.reply_timeout``, or the connection was
    lost during the finish): the change may or may not have been saved.

    Never retried: running the request again could apply it twice. The
    default app answers 503 saying so.
    """

    may_have_saved = True

    def __init__(
        self, name: str, address: Any, timeout: float,
        reason: str | None = None, zeo: bool = True,
    ) -> None:
        super().__init__(name, address, timeout, reason, zeo)
        label = f'database {name!r}' if name else 'the primary database'
        self.args = (
            f'a commit to {label} at {address} may or may not have been '
            f'saved: {reason}',
        )


class FolderKeyError(ZeostoreError, KeyError):
    """A name was not found in a :class:`~pyramid_zeostore.Folder`."""


class InvalidName(ZeostoreError, ValueError):
    """``name`` cannot name an object in a folder; the message says why."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


@implementer(IRetryableError)
class SafeMethodWrote(ZeostoreError):
    """A safe-method request changed persistent objects; pyramid_retry
    runs it again on the full, committing path."""


class EvolveError(ZeostoreError):
    """Evolve steps could not run: another process held their claim too
    long, or this process lost its claim to another."""


class CommandError(ZeostoreError):
    """A ``pzeo`` failure to report in one line, with an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def unwrap(
    error: BaseException, kinds: tuple[type[BaseException], ...]
) -> BaseException:
    """What a configuration action raised, if it is one of ``kinds``,
    out of Pyramid's ConfigurationExecutionError (whose text adds the
    class and "in: Line 0 of file None"); else ``error`` itself."""
    if isinstance(error, ConfigurationExecutionError) and isinstance(
        error.evalue, kinds
    ):
        return error.evalue
    return error
