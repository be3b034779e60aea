"""Evolve steps: migrations of stored objects, each run once per database.

An application registers steps with the ``add_evolution_step`` directive
(Substance D's design)::

    def add_titles(evolution):
        for obj in evolution.batches(evolution.root.values()):
            if not hasattr(obj, 'title'):
                obj.title = ''

    config.add_evolution_step(add_titles, after='myapp.evolve.split')

``pzeo evolve INI`` lists the pending steps and runs them (``--run``);
``zeostore.autoevolve = true`` runs them at startup. The names of the
finished steps are kept in the ZODB root, beside (not inside) the app
root, under :data:`RECORD`. The contract of a step:

- It is called with an :class:`Evolution`: ``.root`` (the app root, made
  by the configured appmaker), ``.zodb_root``, ``.conn``, ``.batches()``
  and ``.progress``. It runs in a transaction of its own, which also
  marks it finished: a step that raises, or a process that dies, leaves
  it pending, and a conflict runs it again (up to ``attempts`` times).
- A step over many objects iterates with :meth:`Evolution.batches`,
  which commits every ``size`` objects (a conflict replays that batch
  only) and keeps memory bounded. Its batches are committed before the
  step is marked finished, so after a crash it runs again from the
  start: a batched step must be idempotent (skip what is done already).
- A new database (an empty ZODB root, the appmaker has not run yet) gets
  every registered step marked finished without running it: its app
  root is made in the current shape.

Runs are serialised by a *claim* in the record (host, pid, heartbeat):
of N processes that start at once, one runs the steps and the others
wait, bounded, for its claim to go, then find nothing pending. A claim
whose owner died (same host, no such pid) or that has not beaten for
:data:`STALE` seconds is taken over.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import itertools
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import transaction
from persistent import Persistent
from persistent.mapping import PersistentMapping
from pyramid.config import PHASE3_CONFIG
from pyramid.exceptions import ConfigurationError
from pyramid.util import TopologicalSorter
from transaction.interfaces import NoTransaction, TransientError
from zope.interface import implementer

from . import progress as progress_module
from .backoff import pause
from .connection import get_databases
from .exceptions import EvolveError
from .interfaces import IAppmaker, IEvolutionSteps, IZeostoreSettings
from .progress import Progress
from .root import default_appmaker
from .settings import parse_settings

__all__ = [
    'EvolutionSteps', 'Evolution', 'EvolveError', 'Evolver', 'RECORD',
    'Step', 'StepResult', 'add_evolution_step', 'autoevolve', 'get_steps',
    'includeme', 'suspended',
]

log = logging.getLogger(__name__)

#: The key of the record of finished steps in the ZODB root.
RECORD = 'zeostore.evolve'
#: Objects per batch of :meth:`Evolution.batches` (its default).
BATCH_SIZE = 1000
#: Seconds without a heartbeat after which a claim is taken over.
STALE = 600.0
#: Seconds a process waits for another's claim before it gives up.
WAIT = 900.0
#: Seconds between two looks at another process's claim.
POLL = 0.2
#: Attempts of a step (and of a batch) that conflicts.
ATTEMPTS = 5

StepCallable = Callable[['Evolution'], Any]

#: True while :func:`suspended`: ``zeostore.autoevolve`` does nothing
#: (``pzeo evolve`` loads the app to learn its steps, not to run them).
_suspended: contextvars.ContextVar[bool] = contextvars.ContextVar(
    'zeostore_autoevolve_suspended', default=False
)


#: who finished the steps of a database made in their shape
NEW = 'new database'


@dataclass(frozen=True)
class Step:
    """One registered evolve step."""

    name: str
    callable: StepCallable
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


@implementer(IEvolutionSteps)
class EvolutionSteps:
    """The steps of one configuration (the ``IEvolutionSteps`` utility)."""

    def __init__(self) -> None:
        self._steps: dict[str, Step] = {}

    def add(self, step: Step) -> None:
        """Add ``step``. :raises ValueError: its name is taken."""
        if step.name in self._steps:
            raise ValueError(f'evolve step {step.name!r} is registered')
        self._steps[step.name] = step

    def get(self, name: str) -> Step | None:
        """The step called ``name``, or None."""
        return self._steps.get(name)

    def __len__(self) -> int:
        return len(self._steps)

    def names(self) -> list[str]:
        """The names, in registration order."""
        return list(self._steps)

    def ordered(self) -> list[Step]:
        """Return the steps in the order they run: ``before``/``after``
        first, registration order otherwise.

        :raises ConfigurationError: naming the step of a cycle or the one
            whose ``before``/``after`` names no step.
        """
        sorter = TopologicalSorter(default_before=None, default_after=None)
        for step in self._steps.values():
            for other in step.before + step.after:
                if other not in self._steps:
                    raise ConfigurationError(
                        f'evolve step {step.name!r}: no step {other!r} '
                        f'(before/after must name registered steps: '
                        f'{", ".join(sorted(self._steps)) or "none"})'
                    )
            sorter.add(step.name, step, before=step.before or None,
                       after=step.after or None)
        try:
            return [step for _, step in sorter.sorted()]
        except Exception as e:  # pyramid's CyclicDependencyError
            raise ConfigurationError(
                f'evolve steps in a cycle of before/after: {e}'
            ) from None


    def mark_new(self, zodb_root: Any) -> None:
        """Record every step as finished by ``'new database'`` in
        ``zodb_root`` (a new database's, whose appmaker just made the app
        root in its current shape), in the caller's transaction."""
        record = _record(zodb_root, create=True)
        for name in self._steps:
            record['finished'].setdefault(name, _info(NEW))


def get_steps(registry: Any) -> EvolutionSteps:
    """The registry's steps (empty if none were registered)."""
    return registry.queryUtility(IEvolutionSteps) or EvolutionSteps()


def dotted_name(obj: Any) -> str:
    """``module.qualname`` of a callable: a step's default name."""
    module = getattr(obj, '__module__', None) or '?'
    name = getattr(obj, '__qualname__', None) or type(obj).__qualname__
    return f'{module}.{name}'


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def add_evolution_step(
    config: Any,
    step: str | StepCallable,
    name: str | None = None,
    before: str | Sequence[str] | None = None,
    after: str | Sequence[str] | None = None,
) -> None:
    """Directive: register ``step(evolution)`` as an evolve step.

    ``step`` is a callable or its dotted name (resolved at commit);
    ``name`` defaults to its dotted name (``module.qualname``), which is
    what the database records once it ran, so keep it stable. ``before``
    and ``after`` name other steps (one name or several). Two steps with
    one name are a configuration conflict; a cycle or a name that no
    step has is a ``ConfigurationError`` naming the step.

    .. versionadded:: 0.1
    """
    if name is None:
        name = (
            step.replace(':', '.') if isinstance(step, str)
            else dotted_name(step)
        )
    before_names, after_names = _names(before), _names(after)
    steps = config.registry.getUtility(IEvolutionSteps)

    def register() -> None:
        found = config.maybe_dotted(step)
        if not callable(found):
            raise ConfigurationError(
                f'evolve step {name!r}: {step!r} is not callable'
            )
        steps.add(Step(name, found, before_names, after_names))
        intr['callable'] = found

    intr = config.introspectable(
        'zodb evolution steps', name, name, 'zodb evolution step'
    )
    intr['before'] = before_names
    intr['after'] = after_names
    config.action(
        ('zeostore.evolution step', name), register, introspectables=(intr,)
    )
    # Once every step of this commit is in: a cycle or an unknown name
    # fails the configuration, not a later run.
    config.action(None, steps.ordered, order=PHASE3_CONFIG + 10)


def includeme(config: Any) -> None:
    """Add the ``add_evolution_step`` directive and, with
    ``zeostore.autoevolve = true``, the run of pending steps at startup
    (once every step of the configuration is registered)."""
    registry = config.registry
    if registry.queryUtility(IEvolutionSteps) is None:
        registry.registerUtility(EvolutionSteps(), IEvolutionSteps)
    config.add_directive('add_evolution_step', add_evolution_step)
    parsed = registry.queryUtility(IZeostoreSettings)
    if parsed is None:
        parsed = parse_settings(config.get_settings())
    if parsed.autoevolve:
        config.action(
            'zeostore.autoevolve', autoevolve, args=(registry,),
            order=PHASE3_CONFIG + 30,
        )


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Meanwhile, ``zeostore.autoevolve`` runs nothing in this thread
    (``pzeo evolve`` loads the app only to learn its steps)."""
    token = _suspended.set(True)
    try:
        yield
    finally:
        _suspended.reset(token)


def autoevolve(registry: Any, wait: float = WAIT) -> None:
    """Run the pending steps of the registry's primary database, then
    close the databases (each process, forked or not, opens its own on
    first use): the startup of ``zeostore.autoevolve = true``.

    Of processes starting together, one runs the steps and the others
    wait for it, at most ``wait`` seconds: an app must not serve a
    database in a shape it does not know, so a process that waited in
    vain fails to start.

    :raises EvolveError: another process held the claim too long.
    :raises DatabaseUnavailable: the server did not answer in time.
    """
    if _suspended.get():
        return
    steps = get_steps(registry)
    if not len(steps):
        return  # nothing to run: the database is not even opened
    databases = get_databases(registry)
    try:
        db = databases.get('')
        evolver = Evolver(
            db, steps.ordered(), registry.queryUtility(IAppmaker),
            user='zeostore.autoevolve',
        )
        for result in evolver.run(wait=wait):
            log.info('evolve step %s finished in %.1fs', result.name,
                     result.seconds)
    finally:
        databases.close()


# -- running ----------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds'
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@dataclass
class StepResult:
    """What running one step did."""

    name: str
    seconds: float
    attempts: int
    objects: int  # objects its batches went through
    skipped: bool = False  # finished by another process meanwhile


class Evolution:
    """What a step gets: the roots, its connection, batches, progress.

    ``root`` is the app root (the appmaker's, made on first access),
    ``zodb_root`` the database's root, ``conn`` the connection,
    ``name`` the step's name, ``dry_run`` whether nothing will be
    committed, ``progress`` a :class:`~pyramid_zeostore.progress.Progress`
    (``set_total``/``update``; :meth:`batches` moves it itself).
    """

    def __init__(
        self, evolver: Evolver, step: Step, progress: Progress
    ) -> None:
        self.evolver = evolver
        self.step = step
        self.name = step.name
        self.conn = evolver.conn
        self.dry_run = evolver.dry_run
        self.progress = progress
        self.objects = 0
        self.batch = 0

    @property
    def zodb_root(self) -> Any:
        return self.conn.root()

    @property
    def root(self) -> Any:
        return self.evolver.appmaker(self.conn.root())

    def batches(
        self, iterable: Iterable[Any], size: int = BATCH_SIZE,
        total: int | None = None,
    ) -> Iterator[Any]:
        """Yield the items of ``iterable``, committing every ``size``
        (in a dry run, a savepoint instead) and emptying the connection's
        cache after each, so that memory stays bounded however many
        objects there are. Persistent items of a batch are prefetched.

        A conflict on a batch's commit aborts it and yields the same
        items again (reloaded), up to ``attempts`` times: the loop's
        body must only change the item it is given. The iteration goes
        on across commits, so iterate over something that the step does
        not add to or remove from (a list of keys, if need be).
        ``total`` (default: ``len(iterable)`` if it has one) is shown by
        the progress.
        """
        if size < 1:
            raise ValueError(f'size must be 1 or more, not {size}')
        if total is None and hasattr(iterable, '__len__'):
            total = len(iterable)  # type: ignore[arg-type]
        if total is not None:
            self.progress.set_total(total)
        items = iter(iterable)
        while True:
            buffer = list(itertools.islice(items, size))
            if not buffer:
                return
            self.conn.prefetch(
                [o for o in buffer if isinstance(o, Persistent)]
            )
            for attempt in itertools.count(1):
                yield from buffer
                try:
                    self.evolver.end_batch()
                except TransientError as e:
                    self.evolver.abort()
                    if attempt >= self.evolver.attempts:
                        raise
                    log.info('evolve step %s: batch %d conflicted, '
                             'again: %s', self.name, self.batch + 1, e)
                    pause(attempt, 0.01, 0.5)
                    self.evolver.begin(self)
                    continue
                break
            self.batch += 1
            self.objects += len(buffer)
            self.progress.update(len(buffer))
            buffer.clear()
            if not self.dry_run:
                self.evolver.begin(self)


class Evolver:
    """Runs the pending steps of one ``ZODB.DB`` (its primary).

    ``steps`` in the order they run (``EvolutionSteps.ordered()``);
    ``appmaker`` gives the steps' ``root`` (default: the default
    appmaker); ``progress(desc) -> Progress`` one progress per step
    (default: silent); ``user`` goes into each transaction's user.
    """

    def __init__(
        self,
        db: Any,
        steps: Sequence[Step],
        appmaker: Callable[[Any], Any] | None = None,
        *,
        attempts: int = ATTEMPTS,
        user: str = 'pzeo evolve',
        progress: Callable[[str], Progress] | None = None,
        stale: float = STALE,
        poll: float = POLL,
    ) -> None:
        self.db = db
        self.steps = list(steps)
        self.appmaker = appmaker or default_appmaker
        self.attempts = attempts
        self.user = user
        self.progress = progress or (lambda desc: progress_module.null())
        self.stale = stale
        self.poll = poll
        self.tm = transaction.TransactionManager(explicit=True)
        self.conn: Any = None
        self.dry_run = False
        self.token: str | None = None
        self.host = socket.gethostname()

    # -- reading

    def status(self) -> tuple[dict[str, dict], list[Step], bool]:
        """``(finished, pending, new)``: the finished steps' records
        (name -> when, by whom, host, pid), the registered steps still
        to run, and whether the database is new (its steps would be
        marked finished without running)."""
        with self._connection():
            return self._status()

    # -- writing

    def run(
        self,
        *,
        dry_run: bool = False,
        wait: float = WAIT,
        announce: Callable[[Step], None] | None = None,
    ) -> list[StepResult]:
        """Run the pending steps, in order, each in transactions of its
        own; return what each did. ``announce(step)`` is called as each
        begins. A dry run runs them and aborts (batches take savepoints),
        claims nothing and marks nothing.

        :raises EvolveError: another process held the claim longer than
            ``wait`` seconds, or took this one's over.
        """
        self.dry_run = dry_run
        results = []
        with self._connection():
            if dry_run:
                _, pending, new = self._status()
                if new:
                    pending = []
            else:
                pending = self._claim(wait)
            try:
                for step in pending:
                    if announce is not None:
                        announce(step)
                    results.append(self._run_step(step))
            finally:
                if self.token is not None:
                    self._release()
        return results

    def _status(self) -> tuple[dict[str, dict], list[Step], bool]:
        self.tm.begin()
        try:
            zodb_root = self.conn.root()
            record = zodb_root.get(RECORD)
            finished = (
                {k: dict(v) for k, v in record['finished'].items()}
                if record is not None else {}
            )
            pending = [s for s in self.steps if s.name not in finished]
            return finished, pending, (
                record is None and len(zodb_root) == 0
            )
        finally:
            self.abort()

    def mark_finished(self, name: str, by: str = 'marked finished') -> bool:
        """Record step ``name`` as finished without running it; return
        False if it was already. Retried on conflicts."""
        with self._connection():
            for attempt in range(1, self.attempts + 1):
                self.tm.begin()
                try:
                    record = self._record(create=True)
                    if name in record['finished']:
                        self.abort()
                        return False
                    record['finished'][name] = self._info(by)
                    self._note(f'evolve: {name} marked finished')
                    self.tm.commit()
                    return True
                except TransientError:
                    self.abort()
                    if attempt == self.attempts:
                        raise
                    pause(attempt, 0.01, 0.5)
                except BaseException:
                    self.abort()
                    raise
        raise AssertionError('unreachable')  # pragma: no cover - loop

    # -- the steps' transactions (also used by Evolution.batches)

    def begin(self, evolution: Evolution) -> None:
        self.tm.begin()
        suffix = f' (batch {evolution.batch + 1})' if evolution.batch else ''
        self._note(f'evolve: {evolution.name}{suffix}')

    def end_batch(self) -> None:
        """A batch is done: commit it (a savepoint in a dry run), then
        empty the connection's cache."""
        if self.dry_run:
            self.tm.savepoint(optimistic=True)
        else:
            self._beat()
            self.tm.commit()
        self.conn.cacheMinimize()

    def _run_step(self, step: Step) -> StepResult:
        started = time.monotonic()
        with self.progress(f'evolve {step.name}') as progress:
            for attempt in range(1, self.attempts + 1):
                evolution = Evolution(self, step, progress)
                self.begin(evolution)
                try:
                    record = self._record(create=False)
                    if record is not None and step.name in record[
                        'finished'
                    ]:
                        self.abort()  # another runner (no claim)
                        return StepResult(step.name, 0.0, attempt, 0, True)
                    step.callable(evolution)
                    if self.dry_run:
                        self.abort()
                    else:
                        self._beat()
                        record = self._record(create=True)
                        record['finished'][step.name] = self._info(
                            self.user
                        )
                        self.tm.commit()
                    self.conn.cacheMinimize()
                    return StepResult(
                        step.name, time.monotonic() - started, attempt,
                        evolution.objects,
                    )
                except TransientError as e:
                    self.abort()
                    if attempt == self.attempts:
                        raise
                    log.info('evolve step %s conflicted, again: %s',
                             step.name, e)
                    pause(attempt, 0.01, 0.5)
                except BaseException:
                    self.abort()
                    raise
        raise AssertionError('unreachable')  # pragma: no cover - loop

    # -- the claim

    def _claim(self, wait: float) -> list[Step]:
        """Claim the run and return the pending steps; [] (and no
        claim) when none are pending, after waiting for another
        process's claim to go if there is one."""
        deadline = time.monotonic() + wait
        token = uuid.uuid4().hex
        attempt = 0
        while True:
            attempt += 1
            self.tm.begin()
            try:
                zodb_root = self.conn.root()
                new = RECORD not in zodb_root and len(zodb_root) == 0
                record = self._record(create=True)
                if new:
                    # A new database: the appmaker makes its root in the
                    # current shape, so no step has anything to do.
                    for step in self.steps:
                        record['finished'][step.name] = self._info(NEW)
                pending = [
                    s for s in self.steps if s.name not in record['finished']
                ]
                claim = record.get('claim')
                if pending and claim and not self._is_stale(claim):
                    self.abort()
                    if time.monotonic() >= deadline:
                        raise EvolveError(
                            f'another process ({claim["host"]} pid '
                            f'{claim["pid"]}, since {claim["since"]}) '
                            f'is running evolve steps; waited {wait:.0f}s '
                            f'for it'
                        )
                    time.sleep(self.poll)
                    continue
                if pending:
                    if claim:
                        log.warning(
                            'taking over the stale evolve claim of %s '
                            'pid %s (since %s)', claim['host'],
                            claim['pid'], claim['since'],
                        )
                    record['claim'] = dict(
                        self._info(self.user), token=token, since=_now(),
                        beat=time.time(),
                    )
                    self._note('evolve: claim')
                if record._p_changed or zodb_root._p_changed:
                    self.tm.commit()
                else:
                    self.abort()
                if pending:
                    self.token = token
                return pending
            except TransientError:
                self.abort()  # another claimer: look again
                pause(min(attempt, 8), 0.01, 0.5)
            except BaseException:
                self.abort()
                raise

    def _is_stale(self, claim: dict) -> bool:
        if claim.get('host') == self.host and (
            claim.get('pid') == os.getpid() or not _alive(claim['pid'])
        ):
            return True  # its process is gone (or is this one)
        return time.time() - claim.get('beat', 0) > self.stale

    def _beat(self) -> None:
        """In the current transaction: check the claim is still this
        run's, and renew its heartbeat."""
        record = self._record(create=False)
        claim = record.get('claim') if record is not None else None
        if not claim or claim.get('token') != self.token:
            raise EvolveError(
                'this process lost its evolve claim (taken over as '
                f'stale by {claim["host"]} pid {claim["pid"]})'
                if claim else 'this process lost its evolve claim'
            )
        # Written each time: a takeover meanwhile makes this conflict.
        record['claim'] = dict(claim, beat=time.time())

    def _release(self) -> None:
        token, self.token = self.token, None
        for attempt in range(1, self.attempts + 1):
            self.tm.begin()
            try:
                record = self._record(create=False)
                claim = record.get('claim') if record is not None else None
                if claim and claim.get('token') == token:
                    record['claim'] = None
                    self._note('evolve: release')
                    self.tm.commit()
                else:
                    self.abort()
                return
            except TransientError:
                self.abort()
                if attempt == self.attempts:
                    raise
                pause(attempt, 0.01, 0.5)
            except BaseException:
                self.abort()
                raise

    # -- helpers

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        self.conn = self.db.open(transaction_manager=self.tm)
        try:
            yield self.conn
        finally:
            # Every transaction ended already, unless something raised
            # between a begin and its abort.
            self.abort()
            self.conn.close()
            self.conn = None

    def abort(self) -> None:
        """Abort the current transaction, if one is begun."""
        with contextlib.suppress(NoTransaction):
            self.tm.abort()

    def _record(self, create: bool) -> Any:
        return _record(self.conn.root(), create)

    def _info(self, by: str) -> dict:
        return _info(by, self.host)

    def _note(self, text: str) -> None:
        txn = self.tm.get()
        txn.note(text)
        txn.user = self.user


def _record(zodb_root: Any, create: bool) -> Any:
    """The record of finished steps in ``zodb_root``; made if absent and
    ``create``, else None."""
    record = zodb_root.get(RECORD)
    if record is None and create:
        record = zodb_root[RECORD] = PersistentMapping(
            finished=PersistentMapping(), claim=None
        )
    return record


def _info(by: str, host: str | None = None) -> dict:
    """What the record says of a finished step: when, by whom, where."""
    return {'at': _now(), 'by': by, 'host': host or socket.gethostname(),
            'pid': os.getpid()}
