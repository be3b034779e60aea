"""Per-request ZODB metrics: loads, stores, conflicts, retries, commit time.

Opt-in, so that requests pay nothing for them by default:
``zeostore.metrics = true`` sends a
:class:`~pyramid_zeostore.events.ZODBRequestMetrics` event after each
request that used a connection, ``zeostore.slow_request_log =
SECONDS`` logs a WARNING line (logger ``pyramid_zeostore.metrics``) for
each slower request, ``zodbconn.transferlog`` writes pyramid_zodbconn's
line per request, and
``zeostore.prometheus_path = /@@metrics`` serves Prometheus counters and
histograms (``pip install pyramid_zeostore[metrics]``; set
``PROMETHEUS_MULTIPROC_DIR`` with several workers). A request's numbers
add up over its retry attempts and are reported when its last attempt
ends, which its finished callbacks tell from the exception propagating.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pyramid.events import NewRequest
from pyramid_retry import is_error_retryable, is_last_attempt
from transaction.interfaces import NoTransaction
from ZODB.POSException import ConflictError

from .environ import METRICS
from .events import (
    ZODBConnectionOpened,
    ZODBConnectionWillClose,
    ZODBRequestMetrics,
)
from .interfaces import IZeostoreSettings

log = logging.getLogger(__name__)


@dataclass
class RequestMetrics:
    """One request's ZODB activity, summed over its attempts."""

    method: str
    path: str
    started: float = field(default_factory=time.perf_counter, repr=False)
    seconds: float = 0.0  # from the first attempt's start to the end
    attempts: int = 0  # attempts that opened a connection
    loads: int = 0  # objects loaded from the storage
    stores: int = 0  # objects written
    conflicts: int = 0  # attempts that ended in a ConflictError
    retries: int = 0  # attempts after the first
    commit_seconds: float = 0.0  # in two-phase commit, all attempts
    committed: bool = False  # the last attempt committed
    status: int | None = None  # the response's, when there was one

    def line(self) -> str:
        """The log line of a slow request."""
        return (
            f'{self.method} {self.path} {self.status or "-"} '
            f'{self.seconds * 1000:.1f}ms loads={self.loads} '
            f'stores={self.stores} conflicts={self.conflicts} '
            f'retries={self.retries} commit={self.commit_seconds * 1000:.1f}ms'
        )


class TransferLog:
    """pyramid_zodbconn's ``zodbconn.transferlog``: a line per request
    (slower than the threshold) in its format, ``"time", "METHOD",
    "/path?query", seconds, loads, stores``, appended to a file (opened
    in each process on its first line) or written to standard output."""

    def __init__(self, path: str, threshold: float | None) -> None:
        self.path = path
        self.threshold = threshold
        self.stream: Any = None
        self.pid = 0
        self.lock = threading.Lock()

    def write(self, request: Any, metrics: RequestMetrics) -> None:
        if self.threshold is not None and metrics.seconds < self.threshold:
            return
        now = datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')
        line = (
            f'"{now}", "{metrics.method}", "{request.path_qs}", '
            f'{metrics.seconds:.2f}, {metrics.loads}, {metrics.stores}\n'
        )
        with self.lock:
            if not self.path:
                stream = sys.stdout
            elif self.stream is None or self.pid != os.getpid():
                # A child after a fork opens its own (append: one file).
                stream = self.stream = open(self.path, 'a')
                self.pid = os.getpid()
            else:
                stream = self.stream
            stream.write(line)
            stream.flush()


class Collector:
    """The subscribers that gather a request's numbers and report them."""

    def __init__(self, registry: Any, slow: float | None,
                 prometheus: Any, transferlog: TransferLog | None = None,
                 ) -> None:
        self.registry = registry
        self.slow = slow
        self.prometheus = prometheus
        self.transferlog = transferlog

    def new_request(self, event: Any) -> None:
        request = event.request
        environ = request.environ
        if METRICS not in environ:
            # Decoded leniently: a path that is not UTF-8 gets its 400
            # from the error view, not a 500 from here.
            path = environ.get('PATH_INFO', '').encode('latin-1')
            environ[METRICS] = RequestMetrics(
                request.method, path.decode('utf-8', 'replace')
            )

    def opened(self, event: Any) -> None:
        request, conn = event.request, event.conn
        metrics = request.environ[METRICS]
        metrics.attempts += 1
        for each in conn.connections.values():
            each.getTransferCounts(clear=True)  # counts since the last use
        try:
            txn = request.tm.get()
        except NoTransaction:
            txn = None
        if txn is not None:
            started: list[float] = []
            txn.addBeforeCommitHook(
                lambda: started.append(time.perf_counter())
            )

            def after(status: bool) -> None:
                if started:
                    metrics.commit_seconds += time.perf_counter() - started[0]
                metrics.committed = status

            txn.addAfterCommitHook(after)
        request.add_response_callback(self.responded)

    @staticmethod
    def responded(request: Any, response: Any) -> None:
        request.environ[METRICS].status = response.status_int

    def will_close(self, event: Any) -> None:
        request = event.request
        metrics = request.environ[METRICS]
        for each in event.conn.connections.values():
            loads, stores = each.getTransferCounts(clear=True)
            metrics.loads += loads
            metrics.stores += stores
        # Runs in the finished callbacks, after this one (and the close).
        request.add_finished_callback(self.finished)

    def finished(self, request: Any) -> None:
        metrics = request.environ[METRICS]
        exc = sys.exc_info()[1]  # what ends this attempt, if anything
        # ... or what an exception view answered (a 409 for the last
        # attempt's conflict).
        ended = exc if exc is not None else getattr(request, 'exception', None)
        if isinstance(ended, ConflictError):
            metrics.conflicts += 1
        metrics.retries = request.environ.get('retry.attempt', 0)
        if (
            ended is not None
            and not is_last_attempt(request)
            and is_error_retryable(request, ended)
        ):
            return  # another attempt follows (pyramid_retry retries a
            # squashed retryable error too: a fast read that wrote)
        metrics.seconds = time.perf_counter() - metrics.started
        self.report(request, metrics)

    def report(self, request: Any, metrics: RequestMetrics) -> None:
        self.registry.notify(ZODBRequestMetrics(request, metrics))
        if self.slow is not None and metrics.seconds >= self.slow:
            log.warning('slow request: %s', metrics.line())
        if self.prometheus is not None:
            self.prometheus.observe(metrics)
        if self.transferlog is not None:
            self.transferlog.write(request, metrics)


class Prometheus:
    """Counters and histograms of :class:`RequestMetrics` for Prometheus.

    Each configuration has its own ``CollectorRegistry``; with
    ``PROMETHEUS_MULTIPROC_DIR`` set (several worker processes) the
    endpoint shows every process's numbers, as ``prometheus_client``'s
    multiprocess mode does.
    """

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
            import prometheus_client.multiprocess  # noqa: F401
        except ImportError:
            raise ImportError(
                'zeostore.prometheus_path needs prometheus_client: '
                'pip install "pyramid_zeostore[metrics]"'
            ) from None
        self.prom = prom
        self.registry = prom.CollectorRegistry()
        labels = ('method',)
        self.requests = prom.Counter(
            'zodb_requests', 'Requests that used ZODB', labels,
            registry=self.registry,
        )
        self.loads = prom.Counter(
            'zodb_loads', 'Objects loaded', labels, registry=self.registry
        )
        self.stores = prom.Counter(
            'zodb_stores', 'Objects stored', labels, registry=self.registry
        )
        self.conflicts = prom.Counter(
            'zodb_conflicts', 'Attempts ended by a ConflictError', labels,
            registry=self.registry,
        )
        self.retries = prom.Counter(
            'zodb_retries', 'Attempts after the first', labels,
            registry=self.registry,
        )
        self.commit = prom.Histogram(
            'zodb_commit_seconds', 'Seconds in two-phase commit per request',
            labels, registry=self.registry,
        )
        self.duration = prom.Histogram(
            'zodb_request_seconds', 'Seconds per request that used ZODB',
            labels, registry=self.registry,
        )

    def observe(self, m: RequestMetrics) -> None:
        method = m.method
        self.requests.labels(method).inc()
        self.loads.labels(method).inc(m.loads)
        self.stores.labels(method).inc(m.stores)
        self.conflicts.labels(method).inc(m.conflicts)
        self.retries.labels(method).inc(m.retries)
        if m.committed:
            self.commit.labels(method).observe(m.commit_seconds)
        self.duration.labels(method).observe(m.seconds)

    def exposition(self) -> tuple[bytes, str]:
        prom = self.prom
        registry = self.registry
        if os.environ.get('PROMETHEUS_MULTIPROC_DIR'):
            registry = prom.CollectorRegistry()
            prom.multiprocess.MultiProcessCollector(registry)
        return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST


PROMETHEUS_ROUTE = 'zeostore.prometheus'


def includeme(config: Any) -> None:
    """Subscribe the collector if any metrics setting is on."""
    settings = config.registry.getUtility(IZeostoreSettings)
    if not (
        settings.metrics
        or settings.slow_request_log is not None
        or settings.prometheus_path
        or settings.transferlog is not None
    ):
        return
    prometheus = Prometheus() if settings.prometheus_path else None
    transferlog = None
    if settings.transferlog is not None:
        transferlog = TransferLog(
            settings.transferlog, settings.transferlog_threshold
        )
    collector = Collector(
        config.registry, settings.slow_request_log, prometheus, transferlog
    )
    config.add_subscriber(collector.new_request, NewRequest)
    config.add_subscriber(collector.opened, ZODBConnectionOpened)
    config.add_subscriber(collector.will_close, ZODBConnectionWillClose)
    if prometheus is not None:

        def metrics_view(request: Any) -> Any:
            body, content_type = prometheus.exposition()
            response = request.response
            response.body = body
            response.headers['Content-Type'] = content_type
            return response

        config.add_route(
            PROMETHEUS_ROUTE, settings.prometheus_path,
            factory=lambda request: None,
        )
        config.add_view(
            metrics_view, route_name=PROMETHEUS_ROUTE, request_method='GET'
        )
