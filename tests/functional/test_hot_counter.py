"""The hot spot acceptance test: gunicorn, 4 workers, one counter.

A real ``runzeo`` and ``gunicorn --paste app.ini -w 4`` serving the ready
app with its default settings; 4 concurrent clients increment one int
attribute for ``ZEOSTORE_HOT_COUNTER_SECONDS`` (default 20) seconds. No
answer may be a 5xx, and the counter must end equal to the number of 2xx
answers: no acknowledged write lost, none applied twice. 409s are allowed
(and reported) but, on one host, not expected.

A second, shorter test turns the defenses off (one attempt, no lock) to
prove that spent retries reach users as a 409 with a clear message, in
JSON or HTML, never as a 500.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time

import pytest

from .conftest import JSON_HEADERS, ServerProcess, write_ini
from .conftest import gunicorn as start_gunicorn

DURATION = float(os.environ.get('ZEOSTORE_HOT_COUNTER_SECONDS', '20'))
WORKERS = 4
CLIENTS = 4
TIMEOUT = 60.0  # per request: far above any lock wait or backoff
HTML_HEADERS = dict(JSON_HEADERS, Accept='text/html')
BODY = b'{"attribute": "counter", "by": 1}'
MESSAGE = 'nothing was saved. Please try again.'

pytestmark = pytest.mark.slow


def gunicorn(servers, tmp_path, zeo_server, **settings) -> ServerProcess:
    # On an empty database: the four workers race to create the root
    # record, and the losers retry (databases.py).
    ini = write_ini(tmp_path, zeo_server.uri(), **settings)
    return servers(start_gunicorn(ini, WORKERS), timeout=60)


def create_counter(server: ServerProcess) -> None:
    status, _, body = server.request(
        '/', 'POST',
        json.dumps(
            {'name': 'counter', 'type': 'item',
             'attributes': {'counter': 0}}
        ).encode(),
        JSON_HEADERS,
    )
    assert status == 201, body


def counter_value(server: ServerProcess) -> int:
    status, _, body = server.request('/counter?format=json')
    assert status == 200, body
    return json.loads(body)['attributes']['counter']


class Load:
    """``clients`` threads POSTing increments until a deadline."""

    def __init__(self, server, clients, headers_for=lambda i: JSON_HEADERS):
        self.server = server
        self.clients = clients
        self.headers_for = headers_for
        self.lock = threading.Lock()
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.conflict_bodies: dict[str, bytes] = {}  # content type -> body
        self.stop = threading.Event()

    def client(self, number: int, deadline: float) -> None:
        headers = self.headers_for(number)
        conn = http.client.HTTPConnection(
            '127.0.0.1', self.server.port, timeout=TIMEOUT
        )
        try:
            while time.monotonic() < deadline and not self.stop.is_set():
                try:
                    conn.request(
                        'POST', '/counter/@@increment', BODY, headers
                    )
                    resp = conn.getresponse()
                    body = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    with self.lock:
                        self.errors.append(repr(e))
                    conn.close()
                    continue
                if resp.will_close:
                    conn.close()
                with self.lock:
                    self.statuses[resp.status] = (
                        self.statuses.get(resp.status, 0) + 1
                    )
                    if resp.status == 409:
                        kind = resp.headers.get_content_type()
                        self.conflict_bodies.setdefault(kind, body)
        finally:
            conn.close()

    def run(self, duration: float, until=None) -> None:
        """Run for ``duration`` s, or less once ``until()`` is true."""
        deadline = time.monotonic() + duration
        threads = [
            threading.Thread(
                target=self.client, args=(i, deadline), daemon=True
            )
            for i in range(self.clients)
        ]
        for t in threads:
            t.start()
        while until is not None and time.monotonic() < deadline:
            if until():
                self.stop.set()
                break
            time.sleep(0.05)
        for t in threads:
            t.join(duration + TIMEOUT + 10)
        assert not any(t.is_alive() for t in threads), 'a client hung'

    def count(self, pred) -> int:
        return sum(n for s, n in self.statuses.items() if pred(s))

    @property
    def ok(self) -> int:
        return self.count(lambda s: 200 <= s < 300)

    @property
    def server_errors(self) -> int:
        return self.count(lambda s: s >= 500)

    def summary(self) -> str:
        answers = sum(self.statuses.values())
        return (
            f'{answers} answers {sorted(self.statuses.items())}, '
            f'{len(self.errors)} connection errors'
        )


def test_hot_counter_has_no_5xx_and_loses_no_write(
    servers, tmp_path, zeo_server, record_property
):
    server = gunicorn(servers, tmp_path, zeo_server)  # default settings
    create_counter(server)

    load = Load(server, CLIENTS)
    load.run(DURATION)

    value = counter_value(server)
    conflicts = load.statuses.get(409, 0)
    record_property('answers', load.statuses)
    record_property('conflicts_409', conflicts)
    print(
        f'\nhot counter, {WORKERS} workers x {CLIENTS} clients, '
        f'{DURATION:g}s: {load.summary()}; {conflicts} x 409; '
        f'counter {value}, {load.ok} x 2xx'
    )
    assert load.ok > 0, load.summary()
    assert load.server_errors == 0, (load.summary(), server.log())
    assert load.errors == [], (load.summary(), server.log())
    assert load.count(lambda s: not (200 <= s < 300 or s == 409)) == 0, (
        load.summary()
    )
    assert value == load.ok, (
        f'counter is {value} after {load.ok} acknowledged increments'
    )


def test_spent_retries_are_409_with_a_message_never_500(
    servers, tmp_path, zeo_server
):
    server = gunicorn(
        servers, tmp_path, zeo_server,
        **{'retry.attempts': 1, 'zeostore.conflict_lock': 'false'},
    )
    create_counter(server)

    # Half of the clients want JSON, half HTML; stop once both kinds of
    # 409 were seen (they come within a second or two), at most 30 s.
    load = Load(
        server, 8, lambda i: JSON_HEADERS if i % 2 else HTML_HEADERS
    )
    load.run(
        30.0, until=lambda: len(load.conflict_bodies) == 2
    )
    value = counter_value(server)

    assert load.server_errors == 0, (load.summary(), server.log())
    assert load.errors == [], load.summary()
    assert set(load.statuses) <= {200, 409}, load.summary()
    assert set(load.conflict_bodies) == {'application/json', 'text/html'}, (
        load.summary()
    )
    data = json.loads(load.conflict_bodies['application/json'])
    assert data['error'] == 'Conflict'
    assert data['message'] == (
        'The object was changed by another request 1 time(s) while this '
        'one ran; ' + MESSAGE
    )
    html = load.conflict_bodies['text/html'].decode()
    assert '409 Conflict' in html and MESSAGE in html
    assert 'Traceback' not in html
    assert value == load.ok, (value, load.summary())
