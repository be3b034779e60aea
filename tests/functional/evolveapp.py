"""An app with evolve steps, for tests/functional/test_evolve.py and
tests/unit/test_evolve.py.

``evolveapp.steps`` in the ini picks the steps it registers:

- ``basic``: :func:`first` and :func:`second` (``after`` first), which
  append to ``zodb_root['evolveapp.runs']``;
- ``race``: the same two, each sleeping ``evolveapp.sleep`` seconds to
  widen the race of processes that start together;
- ``many``: :func:`touch_all`, a batched step over every
  :class:`~tests.functional.evolveapp_old.Thing` of
  ``zodb_root['evolveapp.things']`` (``evolveapp.batch`` per batch).

Every process serves ``/evolveapp`` with the finished steps it sees.
"""

from __future__ import annotations

import os
import time

from BTrees.OOBTree import OOBTree
from persistent.list import PersistentList
from pyramid.config import Configurator
from pyramid.response import Response
from ZODB.POSException import ConflictError

from pyramid_zeostore.evolve import RECORD

RUNS = 'evolveapp.runs'
THINGS = 'evolveapp.things'
STATS = 'evolveapp.stats'
SLEEP = 0.0


def _log(evolution, name: str) -> None:
    runs = evolution.zodb_root.get(RUNS)
    if runs is None:
        runs = evolution.zodb_root[RUNS] = PersistentList()
    runs.append((name, os.getpid()))
    if SLEEP:
        time.sleep(SLEEP)


def first(evolution) -> None:
    _log(evolution, 'first')


def second(evolution) -> None:
    _log(evolution, 'second')


def conflicting_once(evolution) -> None:
    """Raises a ConflictError on its first attempt in this process."""
    _log(evolution, 'conflicting_once')
    if not getattr(conflicting_once, 'raised', False):
        conflicting_once.raised = True
        raise ConflictError('on purpose')


def failing(evolution) -> None:
    _log(evolution, 'failing')
    raise RuntimeError('this step fails on purpose')


def touch_all(evolution) -> None:
    """Add 1 to each Thing's ``version``, in batches; keep the most
    objects the connection's cache held meanwhile in ``STATS``."""
    zodb_root = evolution.zodb_root
    things = zodb_root[THINGS]
    size = int(os.environ.get('EVOLVEAPP_BATCH', '1000'))
    db = evolution.conn.db()
    peak = seen = 0
    total = zodb_root.get('evolveapp.count')
    for thing in evolution.batches(things.values(), size, total=total):
        thing.version += 1
        seen += 1
        peak = max(peak, db.cacheSize())
    zodb_root[STATS] = {'peak_cache': peak, 'seen': seen, 'size': size}


def make_things(zodb_root, count: int, per_txn: int, commit) -> None:
    """``count`` Things in ``zodb_root[THINGS]``, committing (``commit()``)
    every ``per_txn``."""
    from tests.functional.evolveapp_old import Thing

    things = zodb_root[THINGS] = OOBTree()
    zodb_root['evolveapp.count'] = count
    for i in range(count):
        things[f'{i:07d}'] = Thing(i)
        if (i + 1) % per_txn == 0:
            commit()
    commit()


def view(request):
    record = request.zodb_conn.root().get(RECORD)
    done = sorted(record['finished']) if record is not None else []
    return Response(f'{os.getpid()} {",".join(done)}')


def main(global_config, **settings):
    global SLEEP
    SLEEP = float(settings.get('evolveapp.sleep', 0))
    kind = settings.get('evolveapp.steps', 'basic')
    with Configurator(settings=settings) as config:
        config.include('pyramid_zeostore')
        if kind in ('basic', 'race'):
            config.add_evolution_step(second, after=f'{__name__}.first')
            config.add_evolution_step(first)
        elif kind == 'failing':
            config.add_evolution_step(failing)
        elif kind == 'many':
            config.add_evolution_step(touch_all, name='touch_all')
        config.add_route('evolveapp', '/evolveapp')
        config.add_view(view, route_name='evolveapp')
    return config.make_wsgi_app()
