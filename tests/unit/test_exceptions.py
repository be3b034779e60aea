"""One hierarchy of errors, each keeping the standard base callers catch."""

from __future__ import annotations

import inspect

import pytest
from pyramid.exceptions import ConfigurationError
from pyramid_retry import IRetryableError

from pyramid_zeostore import exceptions
from pyramid_zeostore.exceptions import (
    CommandError,
    CommitOutcomeUnknown,
    DatabaseUnavailable,
    FolderKeyError,
    InvalidName,
    SafeMethodWrote,
    TLSFileError,
    URIParameterError,
    ZeostoreConfigurationError,
    ZeostoreError,
)

ALL = [
    obj for _, obj in inspect.getmembers(exceptions, inspect.isclass)
    if issubclass(obj, BaseException) and obj.__module__ == exceptions.__name__
]


def test_every_error_is_a_zeostore_error():
    assert len(ALL) == 11
    assert all(issubclass(kind, ZeostoreError) for kind in ALL)


@pytest.mark.parametrize('kind, base', [
    (ZeostoreConfigurationError, ConfigurationError),
    (URIParameterError, ValueError),
    (TLSFileError, ValueError),
    (InvalidName, ValueError),
    (FolderKeyError, KeyError),
])
def test_standard_bases_are_kept(kind, base):
    assert issubclass(kind, base)


def test_a_safe_method_that_wrote_is_retried():
    assert IRetryableError.implementedBy(SafeMethodWrote)


def test_a_command_error_carries_its_exit_status():
    assert CommandError('bad usage', 2).status == 2
    assert CommandError('down').status == 1


def test_a_zeo_outage_names_runzeo_and_the_timeout():
    exc = DatabaseUnavailable('', '/var/zeo.sock', 2.0)
    assert str(exc) == (
        'the primary database is unavailable: no ZEO server answered at '
        '/var/zeo.sock within 2s (is runzeo running? see '
        'zeostore.connect_timeout)'
    )
    probed = DatabaseUnavailable('cat', '/s', 1.5, 'refused')
    assert str(probed).startswith("database 'cat' is unavailable")
    assert 'runzeo' not in str(probed) and str(probed).endswith(': refused')


def test_a_commit_that_did_not_come_back_is_not_retried():
    exc = CommitOutcomeUnknown('', '/var/zeo.sock', 10.0, 'no answer')
    assert isinstance(exc, DatabaseUnavailable)
    assert exc.may_have_saved and not DatabaseUnavailable.may_have_saved
    assert not IRetryableError.providedBy(exc)
    assert str(exc) == (
        'a commit to the primary database at /var/zeo.sock may or may not '
        'have been saved: no answer'
    )


def test_a_sql_server_outage_does_not_speak_of_zeo():
    exc = DatabaseUnavailable(
        '', 'postgres://u:***@db/zodb', 2.0,
        'OperationalError: connection refused', zeo=False,
    )
    text = str(exc)
    assert 'ZEO' not in text and 'runzeo' not in text
    assert 'connect_timeout' not in text  # it does not bound this wait
    assert text == (
        'the primary database is unavailable: its database server at '
        'postgres://u:***@db/zodb did not answer: OperationalError: '
        'connection refused'
    )


def test_again_makes_the_same_error_anew():
    exc = DatabaseUnavailable('x', ('::1', 1), 3.0, 'why', zeo=False)
    again = exc.again()
    assert again is not exc and str(again) == str(exc)
    assert (again.name, again.address, again.timeout, again.reason,
            again.zeo) == ('x', ('::1', 1), 3.0, 'why', False)
