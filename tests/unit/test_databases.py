"""Databases: its interface, and how it is built from settings or a URI."""

from __future__ import annotations

import pytest
from pyramid.exceptions import ConfigurationError
from zope.interface.verify import verifyClass, verifyObject

from pyramid_zeostore import Databases, IDatabases
from pyramid_zeostore.interfaces import IDatabases as Interface


def test_databases_provide_the_whole_interface():
    assert Interface is IDatabases
    verifyClass(IDatabases, Databases)
    databases = Databases.from_uri('memory://')
    verifyObject(IDatabases, databases)
    # what callers use is declared (the interface is the contract)
    declared = set(IDatabases.names())
    assert {
        'specs', 'names', 'connect_timeout', 'is_open', 'bootstrapped',
        'spec', 'get', 'wait_connected', 'unavailable',
        'disconnected_exceptions', 'sync', 'sync_all', 'close',
    } == declared


def test_from_uri_and_from_settings(tmp_path):
    one = Databases.from_uri('memory://', connect_timeout=0.5)
    assert one.names == ('',) and one.connect_timeout == 0.5
    assert not one.is_open
    many = Databases.from_settings({
        'zodb_uri': 'memory://a',
        'zodb_uri.cat': 'memory://b',
        'zeostore.connect_timeout': '3',
    })
    assert many.names == ('', 'cat') and many.connect_timeout == 3.0
    assert many.spec('cat').key == 'zodb_uri.cat'
    with pytest.raises(KeyError):
        many.spec('dog')
    try:
        assert many.get('cat').database_name == 'cat'
        assert many.is_open
    finally:
        many.close()
    assert not many.is_open


def test_from_settings_without_a_uri_names_the_key():
    with pytest.raises(ConfigurationError) as info:
        Databases.from_settings({})
    assert info.value.key == 'zodb_uri'


def test_a_file_in_a_missing_folder_names_the_key(tmp_path):
    dbs = Databases.from_uri(f'file://{tmp_path}/nosuch/Data.fs')
    with pytest.raises(ConfigurationError) as info:
        dbs.get()
    assert info.value.key == 'zodb_uri'
    text = str(info.value)
    assert 'expected paths that exist' in text and 'nosuch' in text
    assert not dbs.is_open


def test_a_file_another_storage_holds_names_the_key(tmp_path):
    from ZODB.FileStorage import FileStorage

    holder = FileStorage(str(tmp_path / 'Data.fs'))  # as runzeo would
    try:
        dbs = Databases.from_uri(f'file://{tmp_path}/Data.fs')
        with pytest.raises(ConfigurationError) as info:
            dbs.get()
    finally:
        holder.close()
    assert info.value.key == 'zodb_uri'
    text = str(info.value)
    assert 'expected a file no other process has open' in text
    assert 'use zeo:// to share it' in text
    assert not dbs.is_open
    dbs.get()  # once it is free
    dbs.close()


def test_a_blob_dir_in_a_missing_folder_names_the_key(tmp_path):
    dbs = Databases.from_settings({
        'zodb_uri': 'memory://',
        'zodb_uri.cat': (f'file://{tmp_path}/Cat.fs'
                         f'?blobstorage_dir={tmp_path}/a/file/blobs'),
    })
    (tmp_path / 'a').write_text('a file, not a folder')
    with pytest.raises(ConfigurationError) as info:
        dbs.get()
    assert info.value.key == 'zodb_uri.cat'
    assert 'expected paths that exist' in str(info.value)


@pytest.mark.parametrize('name, text, expected', [
    ('ZODB.POSException.ReadOnlyError', (), 'read_only=true'),
    ('builtins.RuntimeError', ('odd',), 'it refused: RuntimeError: odd'),
])
def test_other_refusals_name_the_key_and_the_reason(
    monkeypatch, name, text, expected
):
    from pyramid_zeostore import compat, databases

    class ServerException(Exception):
        pass

    monkeypatch.setattr(compat, 'registration_failure',
                        lambda storage, addresses: ServerException(name, text))
    dbs = Databases.from_uri('zeo://127.0.0.1:9?storage=main')
    error = databases.refused_registration(dbs.spec(''))
    assert isinstance(error, ConfigurationError)
    assert error.key == 'zodb_uri' and expected in str(error)


# -- a commit that does not come back -----------------------------------------


class Client:
    """A ZEO ClientStorage's commit methods, failing as told."""

    def __init__(self, vote=None, finish=None, connected=True):
        self.vote_error, self.finish_error = vote, finish
        self.connected = connected
        self.aborts = []

    def is_connected(self):
        return self.connected

    def tpc_vote(self, txn):
        if self.vote_error:
            raise self.vote_error
        return 'voted'

    def tpc_finish(self, txn, f=None):
        if self.finish_error:
            raise self.finish_error
        return 'tid'

    def tpc_abort(self, txn, timeout=None):
        self.aborts.append(timeout)


def guarded(**kw):
    from pyramid_zeostore.databases import guard_commit

    client = Client(**kw)
    spec = Databases.from_uri('memory://').spec('')
    guard_commit(client, spec, 1.5)
    return client


def test_a_commit_that_comes_back_is_untouched():
    client = guarded()
    assert client.tpc_vote('t') == 'voted'
    assert client.tpc_finish('t', None) == 'tid'


def test_a_vote_or_finish_cut_off_may_have_saved(caplog):
    from ZEO.Exceptions import ClientDisconnected

    from pyramid_zeostore.compat import ReplyTimeout
    from pyramid_zeostore.exceptions import CommitOutcomeUnknown

    for client, call in (
        (guarded(vote=ReplyTimeout('no answer')), 'tpc_vote'),
        (guarded(finish=ReplyTimeout('no answer')), 'tpc_finish'),
        (guarded(finish=ClientDisconnected('lost')), 'tpc_finish'),
    ):
        with pytest.raises(CommitOutcomeUnknown) as info:
            getattr(client, call)('t')
        assert info.value.may_have_saved
        assert str(info.value).startswith(
            'a commit to the primary database at memory:// may or may not '
            'have been saved: '
        )
    assert caplog.text.count('may or may not have been saved') == 3


def test_a_vote_that_lost_its_connection_is_retried():
    """The server aborts a transaction whose client left before the
    finish: a plain ClientDisconnected, which pyramid_retry retries."""
    from ZEO.Exceptions import ClientDisconnected

    from pyramid_zeostore.exceptions import CommitOutcomeUnknown

    client = guarded(vote=ClientDisconnected('lost'))
    with pytest.raises(ClientDisconnected) as info:
        client.tpc_vote('t')
    assert not isinstance(info.value, CommitOutcomeUnknown)


def test_an_abort_while_disconnected_does_not_wait():
    from pyramid_zeostore.databases import ABORT_WAIT

    client = guarded()
    client.tpc_abort('t')
    client.connected = False
    client.tpc_abort('t')
    client.tpc_abort('t', timeout=9)  # a caller's own stands
    assert client.aborts == [None, ABORT_WAIT, 9]


# -- why a server does not answer: one probe for a while ----------------------


def test_one_diagnosis_stands_for_a_while(monkeypatch):
    from pyramid_zeostore import databases as module
    from pyramid_zeostore import resolvers

    probes = []

    def diagnose(self, timeout):
        probes.append(timeout)
        return f'reason {len(probes)}'

    monkeypatch.setattr(resolvers.ZEOFactory, 'diagnose', diagnose)
    dbs = Databases.from_uri('zeo:///no/such/dir/zeo.sock')
    now = [100.0]
    monkeypatch.setattr(module.time, 'monotonic', lambda: now[0])
    assert dbs.unavailable('').reason == 'reason 1'
    now[0] += module.DIAGNOSIS_TTL - 0.1
    assert dbs.unavailable('', 0.3).reason == 'reason 1'
    now[0] += 0.2
    assert dbs.unavailable('', 0.3).reason == 'reason 2'
    assert probes == [module.PROBE_TIMEOUT, 0.3]
    # connected again: the next outage is diagnosed afresh
    dbs._clients[''] = type('C', (), {'is_connected': lambda self: True})()
    dbs._dbs[''] = object()
    dbs._pid = module.os.getpid()
    assert dbs.wait_connected('', 0.0)
    assert dbs.unavailable('').reason == 'reason 3'
    # no time left: no probe
    dbs._reasons.clear()
    assert dbs.unavailable('', 0.0).reason is None
    assert len(probes) == 3
