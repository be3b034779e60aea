"""One load scenario for every server: reads, adds, hot-counter increments.

``clients`` threads, each with one keep-alive ``http.client`` connection
(reopened when the server closes it), send a random mix of requests for a
bounded time:

``list``       ``GET /<tag>?format=json&start=..&size=20`` (a page)
``item``       ``GET /<tag>-counter?format=json`` or an added item
``add``        ``POST /<tag>`` a new item with a uuid name
``increment``  ``POST /<tag>-counter/@@increment`` ``{"by": 1}``

Every answer is recorded as a :class:`Call`: kind, status (``None`` when
the connection failed before an answer), latency and ``X-Worker-Pid``
(see ``workerpid.py``). :meth:`Scenario.verify` then reads the database
itself, through a fresh ZEO client of the test process, and checks what
the answers promised::

    scenario = Scenario(server.port, clients=8)
    scenario.setup()
    result = scenario.run(10.0, label='gunicorn -w 4')
    scenario.verify(result, zeo.sock, pids=workers, min_connections=4)
    print(result.summary())
    assert result.problems == [], result.summary()

A write's outcome is *ok* (2xx: it must be in the database), *refused*
(4xx, or a 503 saying nothing was saved: it must not be), or *unknown*
(no answer, another 5xx, or a 503 saying it may have been saved: it may or
may not be). So the counter must lie between the acknowledged increments
and those plus the unknown ones: exactly equal when nothing is unknown.
"""

from __future__ import annotations

import collections
import http.client
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

from .conftest import JSON_HEADERS

#: the default mix: relative weights of the kinds of request
MIX = {'list': 2, 'item': 2, 'add': 3, 'increment': 3}
WRITES = {'add': 3, 'increment': 3}
KINDS = ('list', 'item', 'add', 'increment')
PAGE = 20
NOTHING_SAVED = 'nothing was saved'


@dataclass
class Call:
    """One request and its answer."""

    kind: str
    client: int
    start: float  # time.monotonic() when sent
    seconds: float  # until the answer was read (or the error)
    status: int | None  # None: no HTTP answer
    pid: int | None = None  # X-Worker-Pid
    name: str | None = None  # the child an add creates
    seq: int = 0  # the client's request number
    error: str | None = None
    retry_after: str | None = None
    message: str | None = None  # of a 5xx JSON answer

    @property
    def end(self) -> float:
        return self.start + self.seconds

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        """'ok', 'refused' or 'unknown' (whether a write took effect)."""
        if self.ok:
            return 'ok'
        if self.status is None or self.status >= 500:
            if self.status == 503 and NOTHING_SAVED in (self.message or ''):
                return 'refused'
            return 'unknown'
        return 'refused'


@dataclass
class Result:
    """What a run saw; :meth:`Scenario.verify` adds what the DB holds."""

    label: str
    clients: int
    started: float  # time.monotonic()
    seconds: float
    calls: list[Call]
    # filled in by Scenario.verify
    found_adds: int | None = None
    counter: int | None = None
    zeo_connections: int | None = None  # the server's, less the checker's
    expected_pids: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def of(self, *kinds: str) -> list[Call]:
        kinds = kinds or KINDS
        return [c for c in self.calls if c.kind in kinds]

    def statuses(self, *kinds: str) -> dict:
        """{status: count}, ``None`` counting connection errors."""
        counts = collections.Counter(c.status for c in self.of(*kinds))
        return dict(sorted(counts.items(), key=lambda kv: kv[0] or 0))

    def names(self, outcome: str) -> set[str]:
        return {c.name for c in self.of('add') if c.outcome == outcome}

    def increments(self, outcome: str) -> int:
        return sum(1 for c in self.of('increment') if c.outcome == outcome)

    @property
    def errors(self) -> list[Call]:
        return [c for c in self.calls if c.status is None]

    @property
    def ok(self) -> int:
        return sum(1 for c in self.calls if c.ok)

    def count(self, low: int, high: int) -> int:
        return sum(
            1 for c in self.calls
            if c.status is not None and low <= c.status < high
        )

    @property
    def pids(self) -> dict[int, int]:
        """{worker pid: answers}"""
        return dict(collections.Counter(
            c.pid for c in self.calls if c.pid is not None
        ))

    def max_seconds(self, status: int | None = None) -> float:
        return max(
            (c.seconds for c in self.calls if c.status == status),
            default=0.0,
        )

    def summary(self) -> str:
        n = len(self.calls)
        per_kind = ', '.join(
            f'{kind} {self.statuses(kind)}' for kind in KINDS
            if self.of(kind)
        )
        lines = [
            f'{self.label}: {n} requests in {self.seconds:.1f}s '
            f'({n / max(self.seconds, 1e-9):.0f}/s) by {self.clients} '
            f'clients: {self.ok} 2xx, {self.count(400, 500)} 4xx, '
            f'{self.count(500, 600)} 5xx (503: {self.count(503, 504)}, '
            f'slowest {self.max_seconds(503):.2f}s), '
            f'{len(self.errors)} connection errors; slowest answer '
            f'{max((c.seconds for c in self.calls if c.ok), default=0):.2f}s',
            f'  per kind: {per_kind}',
            f'  adds: {len(self.names("ok"))} acknowledged, '
            f'{self.found_adds} found, {len(self.names("unknown"))} '
            f'unknown; increments: {self.increments("ok")} acknowledged, '
            f'counter {self.counter}, {self.increments("unknown")} unknown',
            f'  pids: {len(self.pids)} answered '
            f'({sum(1 for p in self.expected_pids if p in self.pids)}/'
            f'{len(self.expected_pids)} expected) {self.pids}; '
            f'ZEO connections: {self.zeo_connections}',
        ]
        if self.problems:
            lines.append('  PROBLEMS: ' + '; '.join(self.problems))
        return '\n'.join(lines)


class Scenario:
    """The load of one run against one server (``127.0.0.1:port``).

    Its objects live under a fresh ``tag``: the folder ``/<tag>`` and the
    counter item ``/<tag>-counter``, so runs never see each other's.
    """

    def __init__(
        self,
        port: int,
        *,
        clients: int = 8,
        mix: dict[str, int] | None = None,
        tag: str | None = None,
        timeout: float = 30.0,
        host: str = '127.0.0.1',
    ) -> None:
        self.host = host
        self.port = port
        self.clients = clients
        self.mix = dict(mix or MIX)
        self.tag = tag or 'run-' + uuid.uuid4().hex[:8]
        self.timeout = timeout  # per request: a hang becomes an error
        self.folder = '/' + self.tag
        self.counter = f'/{self.tag}-counter'
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._acked: list[str] = []  # added names, for item reads
        self._halt = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self._deadline = 0.0
        self._label = ''

    # -- setting up -----------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self.host, self.port, timeout=self.timeout
        )

    def setup(self, timeout: float = 60.0) -> None:
        """Create the folder and the counter (waits out a 503, bounded)."""
        for name, kind, attributes in (
            (self.tag, 'folder', {}),
            (self.counter[1:], 'item', {'counter': 0}),
        ):
            body = json.dumps(
                {'name': name, 'type': kind, 'attributes': attributes}
            ).encode()
            deadline = time.monotonic() + timeout
            while True:
                conn = self._connection()
                try:
                    conn.request('POST', '/', body, JSON_HEADERS)
                    resp = conn.getresponse()
                    status, text = resp.status, resp.read()
                except (OSError, http.client.HTTPException) as e:
                    status, text = None, repr(e).encode()
                finally:
                    conn.close()
                if status == 201:
                    break
                if status not in (None, 503) or time.monotonic() > deadline:
                    raise RuntimeError(f'setup {name}: {status} {text!r}')
                time.sleep(0.2)

    # -- running --------------------------------------------------------

    def start(self, duration: float, label: str = '') -> None:
        """Start the clients; they stop after ``duration`` seconds."""
        assert not self._threads, 'one run per scenario'
        self._label = label
        self._started = time.monotonic()
        self._deadline = self._started + duration
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True)
            for i in range(self.clients)
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Ask the clients to stop after their current request."""
        self._halt.set()

    def wait(self) -> Result:
        """Wait for the clients (bounded) and return the result."""
        limit = max(0.0, self._deadline - time.monotonic())
        limit += self.timeout + 30.0
        end = time.monotonic() + limit
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        self._halt.set()
        if any(t.is_alive() for t in self._threads):
            raise RuntimeError(f'a client hung for more than {limit:.0f}s')
        return Result(
            label=self._label,
            clients=self.clients,
            started=self._started,
            seconds=time.monotonic() - self._started,
            calls=self.calls(),
        )

    def run(self, duration: float, label: str = '') -> Result:
        self.start(duration, label)
        return self.wait()

    def calls(self) -> list[Call]:
        """The calls so far (a copy)."""
        with self._lock:
            return list(self._calls)

    def acked_writes(self) -> int:
        with self._lock:
            return sum(
                1 for c in self._calls
                if c.kind in ('add', 'increment') and c.ok
            )

    def _request(self, kind: str, client: int, seq: int, rng):
        """(method, path, body, name) of one request of ``kind``."""
        if kind == 'list':
            with self._lock:
                known = len(self._acked)
            start = rng.randrange(max(1, known))
            return (
                'GET', f'{self.folder}?format=json&start={start}'
                f'&size={PAGE}', None, None,
            )
        if kind == 'item':
            with self._lock:
                name = rng.choice(self._acked) if self._acked else None
            if name is None or rng.random() < 0.5:
                return 'GET', self.counter + '?format=json', None, None
            return 'GET', f'{self.folder}/{name}?format=json', None, None
        if kind == 'add':
            name = uuid.uuid4().hex
            body = {
                'name': name,
                'type': 'item',
                'attributes': {'client': client, 'seq': seq},
            }
            return 'POST', self.folder, json.dumps(body).encode(), name
        if kind == 'increment':
            body = b'{"attribute": "counter", "by": 1}'
            return 'POST', self.counter + '/@@increment', body, None
        raise ValueError(kind)

    def _client(self, number: int) -> None:
        rng = random.Random()
        kinds = list(self.mix)
        weights = [self.mix[k] for k in kinds]
        conn = self._connection()
        seq = 0
        try:
            while (
                time.monotonic() < self._deadline
                and not self._halt.is_set()
            ):
                seq += 1
                kind = rng.choices(kinds, weights)[0]
                method, path, body, name = self._request(
                    kind, number, seq, rng
                )
                call = Call(kind, number, time.monotonic(), 0.0, None,
                            name=name, seq=seq)
                try:
                    conn.request(method, path, body, JSON_HEADERS)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    call.seconds = time.monotonic() - call.start
                    call.error = repr(e)
                    conn.close()
                    self._record(call)
                    time.sleep(0.01)  # a refused connection: do not spin
                    continue
                call.seconds = time.monotonic() - call.start
                call.status = resp.status
                pid = resp.getheader('X-Worker-Pid')
                call.pid = int(pid) if pid else None
                call.retry_after = resp.getheader('Retry-After')
                if resp.status >= 500:
                    call.message = _message(data)
                if resp.will_close:
                    conn.close()
                self._record(call)
                if resp.status == 503:
                    time.sleep(0.01)
        finally:
            conn.close()

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)
            if call.kind == 'add' and call.ok:
                self._acked.append(call.name)

    # -- checking -------------------------------------------------------

    def verify(
        self,
        result: Result,
        zeo_address=None,
        *,
        file_storage: str | None = None,
        storage=None,
        pids=(),
        min_connections: int = 0,
        allow_503: bool = False,
        max_errors: int = 0,
        timeout: float = 30.0,
    ) -> list[str]:
        """Check the database against the answers; set and return
        ``result.problems`` (empty: all is well).

        Reads through a fresh ZEO client of ``zeo_address`` (a socket path
        or ``(host, port)``), or, once the server has stopped, from the
        ``file_storage`` data file itself (read-only), or from ``storage``
        (a storage of another backend, closed here). ``pids``: processes
        that each must have answered; ``min_connections``: ZEO clients the
        server must count besides this checker (one per serving process);
        ``allow_503``: an outage is part of the test (other 5xx never
        are); ``max_errors``: connection errors tolerated (the request in
        flight in a killed worker).
        """
        problems = result.problems
        del problems[:]
        result.expected_pids = set(pids)
        if storage is not None:
            from ZODB import DB

            db = DB(storage)
        elif file_storage is not None:
            from ZODB import DB
            from ZODB.FileStorage import FileStorage

            db = DB(FileStorage(file_storage, read_only=True))
        else:
            import ZEO

            db = ZEO.DB(zeo_address, wait_timeout=timeout)
        try:
            if file_storage is None and storage is None:
                status = db.storage.server_status()
                result.zeo_connections = status['connections'] - 1
            conn = db.open()
            try:
                app_root = conn.root()['app_root']
                folder = app_root[self.tag]
                found = {}
                for name, item in folder.items():
                    item._p_activate()  # a ghost's __dict__ is empty
                    found[name] = dict(item.__dict__)
                length = len(folder)
                counter = app_root[self.counter[1:]].counter
            finally:
                conn.close()
        finally:
            db.close()
        result.found_adds = len(found)
        result.counter = counter

        acked = result.names('ok')
        maybe = result.names('unknown')
        missing = acked - set(found)
        if missing:
            problems.append(
                f'{len(missing)} acknowledged adds missing: '
                f'{sorted(missing)[:5]}'
            )
        phantom = set(found) - acked - maybe
        if phantom:
            problems.append(
                f'{len(phantom)} adds present that were refused or never '
                f'sent: {sorted(phantom)[:5]}'
            )
        if length != len(found):
            problems.append(
                f'folder length {length} != {len(found)} children'
            )
        calls = {c.name: c for c in result.of('add')}
        for name, attrs in found.items():
            call = calls.get(name)
            public = {k: v for k, v in attrs.items() if k in ('client', 'seq')}
            if call is None or public != {'client': call.client,
                                          'seq': call.seq}:
                problems.append(f'item {name} holds {attrs}')
                break

        ok, unknown = result.increments('ok'), result.increments('unknown')
        if not ok <= counter <= ok + unknown:
            problems.append(
                f'counter {counter}: expected {ok} acknowledged increments'
                + (f' (+ up to {unknown} unknown)' if unknown else '')
            )

        for c in result.calls:
            if c.status is None or c.status < 500:
                continue
            if not (allow_503 and c.status == 503):
                problems.append(f'{c.status} for {c.kind}: {c.message}')
                break
            if not c.retry_after:
                problems.append(f'503 for {c.kind} without Retry-After')
                break
        if len(result.errors) > max_errors:
            problems.append(
                f'{len(result.errors)} connection errors (at most '
                f'{max_errors}): {result.errors[0].error}'
            )
        silent = set(pids) - set(result.pids)
        if silent:
            problems.append(f'processes that never answered: {silent}')
        if (
            result.zeo_connections is not None
            and result.zeo_connections < min_connections
        ):
            problems.append(
                f'the ZEO server has {result.zeo_connections} other '
                f'clients, expected at least {min_connections}'
            )
        return problems


def _message(data: bytes) -> str:
    try:
        return json.loads(data)['message']
    except (ValueError, KeyError, TypeError):
        return data[:200].decode(errors='replace')
