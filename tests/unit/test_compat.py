"""Canaries for pyramid_zeostore.compat: each fails loudly when a library
changes the shape of what the package reaches into.

If one of these fails after an upgrade, read the docstring of the compat
function it names, check the new version's source, and fix the function
(and ``compat.CHECKED``) before anything else: two of them guard data
(prefetched oids) and the 503 of a RelStorage outage.
"""

from __future__ import annotations

import inspect
import logging
from urllib.parse import urlencode

import pytest
import transaction
import zodburi
from pyramid.config import Configurator
from pyramid.interfaces import IRequestExtensions
from ZEO.ClientStorage import ClientStorage
from ZODB import DB
from ZODB.MappingStorage import MappingStorage
from zodburi.resolvers import ClientStorageURIResolver

from pyramid_zeostore import compat
from pyramid_zeostore.settings import db_keywords

# -- ZEO: prefetched oids -----------------------------------------------------


def test_zeo_client_storage_keeps_prefetched_oids_in_a_list():
    """``new_oid`` pops from ``self._oids``, refilled by ``new_oids``;
    ``notify_connected`` is what every (re)connection calls."""
    init = inspect.getsource(ClientStorage.__init__)
    new_oid = inspect.getsource(ClientStorage.new_oid)
    assert 'self._oids = []' in init
    assert 'self._oids.pop()' in new_oid
    assert "self._call('new_oids')" in new_oid
    params = inspect.signature(ClientStorage.notify_connected).parameters
    assert list(params) == ['self', 'conn', 'info']


class FakeClient:
    def __init__(self):
        self._oids = [b'1', b'2']
        self.connected = []

    def notify_connected(self, conn, info):
        self.connected.append((conn, info))


def test_forget_prefetched_oids_empties_them_on_each_connection():
    client = FakeClient()
    assert compat.forget_prefetched_oids(client)
    client.notify_connected('conn', 'info')
    assert client._oids == [] and client.connected == [('conn', 'info')]
    client._oids.append(b'3')
    client.notify_connected('again', None)
    assert client._oids == []


def test_a_client_of_another_shape_is_reported(caplog):
    class Other:
        def notify_connected(self, conn, info):
            pass

    with caplog.at_level(logging.ERROR, 'pyramid_zeostore.compat'):
        assert not compat.forget_prefetched_oids(Other())
    assert 'writes may be lost' in caplog.text


# -- RelStorage: disconnected exceptions -----------------------------------


def test_relstorage_drivers_list_their_disconnected_exceptions(tmp_path):
    factory, _ = zodburi.resolve_uri(f'sqlite://?data_dir={tmp_path}')
    storage = factory()
    try:
        found = compat.disconnected_exceptions(storage)
        assert found and all(
            isinstance(kind, type) and issubclass(kind, Exception)
            for kind in found
        )
    finally:
        storage.close()


def test_other_storages_have_no_disconnected_exceptions():
    assert compat.disconnected_exceptions(MappingStorage()) == ()


# -- transaction -----------------------------------------------------------


def test_current_transaction_without_making_one():
    tm = transaction.TransactionManager()
    assert compat.current_transaction(tm) is None
    txn = tm.get()  # a non-explicit manager makes one here
    assert compat.current_transaction(tm) is txn
    tm.commit()
    assert compat.current_transaction(tm) is None
    explicit = transaction.TransactionManager(explicit=True)
    assert compat.current_transaction(explicit) is None
    assert compat.current_transaction(explicit) is None  # still none
    assert compat.current_transaction(explicit) is None


def test_current_transaction_of_the_threads_manager():
    manager = transaction.ThreadTransactionManager()
    assert compat.current_transaction(manager) is None
    txn = manager.begin()
    assert compat.current_transaction(manager) is txn
    manager.abort()
    assert compat.current_transaction(manager) is None


def test_has_joined_sees_a_data_manager():
    tm = transaction.TransactionManager(explicit=True)
    txn = tm.begin()
    assert not compat.has_joined(txn)
    db = DB(MappingStorage())
    conn = db.open(transaction_manager=tm)
    try:
        conn.root()['x'] = 1  # the connection joins the transaction
        assert compat.has_joined(txn)
        assert compat.changed_objects(conn) == [conn.root()]
    finally:
        tm.abort()
        conn.close()
        db.close()
    assert compat.changed_objects(conn) == []


# -- pyramid: request extensions ---------------------------------------------


def fn(request):
    return 'value'


def test_request_properties_are_found_and_removed():
    config = Configurator()
    config.add_request_method(fn, 'prop', reify=True)
    config.add_request_method(lambda request: 1, 'method')
    config.commit()
    registry = config.registry
    assert compat.request_property(registry, 'prop') is fn
    assert compat.request_property(registry, 'missing') is None
    compat.remove_request_properties(registry, ['prop'])
    extensions = registry.getUtility(IRequestExtensions)
    assert 'prop' not in extensions.descriptors
    assert 'method' in extensions.methods  # kept: not empty, stays
    extensions.methods.clear()
    compat.remove_request_properties(registry, [])
    assert registry.queryUtility(IRequestExtensions) is None
    compat.remove_request_properties(registry, ['prop'])  # none: no-op
    assert compat.request_property(registry, 'prop') is None


def test_a_property_given_as_a_descriptor_is_found_as_it_is():
    """``make_property`` keeps a property object itself (no closure)."""
    prop = property(fn)
    config = Configurator()
    config.add_request_method(prop, 'prop', property=True)
    config.commit()
    assert compat.request_property(config.registry, 'prop') is prop


# -- zodburi ---------------------------------------------------------------


def test_zodburi_declares_the_zeo_parameters_we_extend():
    assert set(compat.ZODBURI_ZEO_INT_ARGS) >= {
        'wait', 'wait_timeout', 'read_only', 'debug',
        'wait_for_server_on_startup',
    }
    assert set(compat.ZODBURI_ZEO_STRING_ARGS) >= {'storage', 'blob_dir'}
    assert compat.ZODBURI_ZEO_INT_ARGS is ClientStorageURIResolver._int_args


@pytest.mark.parametrize('raw', [
    {},
    {'connection_cache_size': '5000'},
    {'connection_pool_size': '3', 'database_name': 'x'},
    {'connection_cache_size_bytes': '500mb'},
    {'connection_large_record_size': '2 GB'},
    {'connection_historical_cache_size_bytes': '1048576'},
])
def test_db_keywords_are_what_zodburi_makes(raw):
    expected = zodburi.resolve_uri('memory://?' + urlencode(raw))[1]
    assert db_keywords(raw) == expected


def test_unknown_db_keywords_are_refused_as_zodburi_does():
    with pytest.raises(zodburi.UnknownDatabaseKeywords):
        db_keywords({'bogus': '1'})


# -- ZEO: an OSError raised on the server ------------------------------------


def test_server_errno_reads_zeos_server_exception():
    """ZEO 6 sends an OSError of the server's as ServerException(class
    name, args) (seen for a full disk in tpc_vote)."""
    import errno

    from ZEO.Exceptions import ServerException

    full = ServerException('builtins.OSError', (errno.ENOSPC, 'No space'))
    assert compat.server_errno(full) == errno.ENOSPC
    assert compat.server_errno(OSError(errno.ENOSPC, 'x')) == errno.ENOSPC
    assert compat.server_errno(ServerException('x')) is None
    assert compat.server_errno(
        ServerException('builtins.ValueError', ('x',))
    ) is None
    assert compat.server_errno(ValueError(28)) is None


def test_registration_failures_are_recorded_once_and_taken_out(monkeypatch):
    from ZEO.asyncio import client as zeo_client

    calls = []

    class ClientIO:
        addrs = [('127.0.0.1', 9), '/tmp/zeo.sock']
        storage_key = 'main'

        def register_failed(self, protocol, exc):
            calls.append(exc)
            return 'retried'

    monkeypatch.setattr(zeo_client, 'ClientIO', ClientIO)
    monkeypatch.setattr(compat, 'REGISTRATION_FAILURES', {})
    assert compat.record_registration_failures()
    wrapped = ClientIO.register_failed
    assert compat.record_registration_failures()  # not wrapped twice
    assert ClientIO.register_failed is wrapped
    error = ValueError('unknown storage')
    assert ClientIO().register_failed(None, error) == 'retried'
    assert calls == [error]
    assert compat.registration_failure('other', ClientIO.addrs) is None
    assert compat.registration_failure('main', ['/tmp/zeo.sock']) is error
    assert compat.registration_failure('main', ClientIO.addrs) is error
    compat.REGISTRATION_FAILURES.clear()
    assert compat.registration_failure('main', ClientIO.addrs) is None


def test_a_zeo_without_register_failed_is_reported(monkeypatch, caplog):
    from ZEO.asyncio import client as zeo_client

    monkeypatch.setattr(zeo_client, 'ClientIO', type('ClientIO', (), {}))
    assert not compat.record_registration_failures()
    assert 'no ClientIO.register_failed' in caplog.text


def test_server_exceptions_are_read():
    class ServerException(Exception):
        pass

    assert compat.server_exception(
        ServerException('builtins.ValueError', ('unknown storage', 'x'))
    ) == ('ValueError', 'unknown storage x')
    assert compat.server_exception(
        ServerException('a.B', 'text')) == ('B', 'text')
    assert compat.server_exception(ValueError('a', 'b')) is None
    assert compat.server_exception(ServerException('one')) is None


# -- ZEO: replies bounded (zeostore.reply_timeout) ----------------------------


def test_zeo_runs_every_synchronous_call_through_io_call():
    """``ClientRunner.io_call(coro, wait=True)`` waits on a future that has
    ``result(timeout)``; ``ClientIO`` has the ``protocol`` to close and
    ``disconnected`` to call; ``ClientStorage._server`` is the runner."""
    from ZEO.asyncio import client as zeo_client
    from ZEO.asyncio.futures import ConcurrentFuture

    source = inspect.getsource(zeo_client.ClientRunner.setup_delegation)
    assert 'def io_call(coro, wait=True):' in source
    assert 'self.loop = loop' in source and 'self.client = client' in source
    assert 'timeout' in inspect.signature(ConcurrentFuture.result).parameters
    assert 'protocol' in inspect.signature(
        zeo_client.ClientIO.disconnected).parameters
    for name in ('call', 'load_before', 'tpc_finish'):
        assert 'self.io_call(' in inspect.getsource(
            getattr(zeo_client.ClientRunner, name))
    assert 'self._server = _client_factory(' in inspect.getsource(
        ClientStorage.__init__)


class Protocol:
    closed = False

    def close(self):
        self.closed = True


class IO:
    def __init__(self):
        self.protocol = Protocol()
        self.operational = True
        self.dropped = []

    def disconnected(self, protocol):
        self.dropped.append(protocol)
        self.protocol = None
        self.operational = False


class Loop:
    """Runs what is handed to the IO thread at once, in this thread."""

    closed = False

    def call_soon_threadsafe(self, fn, *args):
        fn(*args)

    def is_closed(self):
        return self.closed


class Future:
    """A ZEO ConcurrentFuture that never answers (``answer`` None)."""

    def __init__(self, answer=None, late=False):
        self.answer = answer
        self.late = late  # done, but only after the wait timed out
        self.waited = []
        self.callbacks = []

    def result(self, timeout=None):
        self.waited.append(timeout)
        if self.answer is None or self.late and len(self.waited) == 1:
            import asyncio

            raise asyncio.TimeoutError()
        return self.answer

    def done(self):
        return self.late

    def add_done_callback(self, fn):
        self.callbacks.append(fn)


class Runner:
    def __init__(self, future):
        self.future = future
        self.client = IO()
        self.loop = Loop()
        self.timeout = 2.0
        self.calls = []

    def io_call(self, coro, wait=True):
        self.calls.append((coro, wait))
        return self.future


def bounded(future, timeout=0.5):
    runner = Runner(future)
    client = type('Client', (), {})()
    client._server = runner
    assert compat.bound_replies(client, timeout)
    return runner


def test_an_answer_in_time_is_returned():
    runner = bounded(Future('answer'))
    assert runner.io_call('coro') == 'answer'
    assert runner.calls == [('coro', False)]
    assert runner.future.waited == [0.5]
    assert runner.client.dropped == []


def test_a_call_without_waiting_gets_the_future():
    future = Future()
    runner = bounded(future)
    assert runner.io_call('coro', wait=False) is future
    assert future.waited == []


def test_no_answer_in_time_drops_the_connection():
    from ZEO.Exceptions import ClientDisconnected

    runner = bounded(Future())
    protocol = runner.client.protocol
    with pytest.raises(compat.ReplyTimeout) as info:
        runner.io_call('coro')
    assert isinstance(info.value, ClientDisconnected)  # retried
    assert str(info.value) == (
        'the ZEO server did not answer within 0.5s '
        '(zeostore.reply_timeout): connection dropped'
    )
    assert protocol.closed and runner.client.dropped == [protocol]
    # its outcome is taken when it comes: ZEO logs no "never retrieved"
    retrieved = []
    failed = type('F', (), {'exception': lambda self: retrieved.append(1)})
    [callback] = runner.future.callbacks
    callback(failed())
    assert retrieved == [1]


def test_while_disconnected_the_wait_for_a_connection_comes_first():
    runner = bounded(Future())
    runner.client.protocol = None
    with pytest.raises(compat.ReplyTimeout, match='within 2.5s'):
        runner.io_call('coro')
    assert runner.future.waited == [2.5]  # ZEO's wait_timeout + the reply
    assert runner.client.dropped == []  # nothing to drop


def test_a_shorter_bound_only_stops_waiting():
    runner = bounded(Future())
    with compat.replies_within(0.1):
        with compat.replies_within(0.3):  # the shorter one holds
            with pytest.raises(compat.ReplyTimeout) as info:
                runner.io_call('coro')
    assert runner.future.waited == [0.1]
    assert str(info.value) == 'the ZEO server did not answer within 0.1s'
    assert not runner.client.protocol.closed
    assert runner.future.callbacks  # taken all the same
    assert getattr(compat._bound, 'seconds', None) is None


def test_a_longer_bound_changes_nothing():
    runner = bounded(Future())
    with compat.replies_within(5.0):
        with pytest.raises(compat.ReplyTimeout, match='connection dropped'):
            runner.io_call('coro')
    assert runner.future.waited == [0.5]


def test_an_answer_just_after_the_bound_is_taken():
    runner = bounded(Future('late answer', late=True))
    assert runner.io_call('coro') == 'late answer'
    assert runner.client.dropped == []


def test_a_closed_loop_is_not_called():
    runner = bounded(Future())
    runner.loop.closed = True
    with pytest.raises(compat.ReplyTimeout):
        runner.io_call('coro')
    assert runner.client.dropped == [] and runner.future.callbacks == []


def test_a_zeo_of_another_shape_is_reported(caplog):
    client = type('Client', (), {})()
    client._server = type('Runner', (), {'io_call': lambda *a: None})()
    with caplog.at_level(logging.ERROR, 'pyramid_zeostore.compat'):
        assert not compat.bound_replies(client, 1.0)
    assert 'holds requests for good' in caplog.text
