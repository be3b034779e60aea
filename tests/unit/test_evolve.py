"""Evolve steps in this process, on FileStorages in ``tmp_path``.

The directive (default names, conflicts, before/after, cycles, unknown
names, dotted names), the :class:`Evolver` (a new database marks its
steps finished, the order, the record and the transaction notes, a
conflict retried, a failing step left pending, dry runs, batches that
commit and replay a conflicted batch, the claim: waited for, stale and
taken over, lost), ``zeostore.autoevolve`` at commit and suspended, and
``pzeo evolve`` through ``cli.main`` (list, run, dry run, mark finished,
rename, usage errors).
"""

from __future__ import annotations

import os
import socket

import pytest
import transaction
from BTrees.OOBTree import OOBTree
from persistent.mapping import PersistentMapping
from pyramid import testing
from pyramid.exceptions import ConfigurationConflictError, ConfigurationError
from pyramid.registry import Registry
from ZODB import DB
from ZODB.FileStorage import FileStorage

from pyramid_zeostore import IDatabases, cli, evolve
from pyramid_zeostore.evolve import (
    RECORD,
    EvolutionSteps,
    EvolveError,
    Evolver,
    Step,
    get_steps,
)
from pyramid_zeostore.progress import Progress
from tests.functional import evolveapp
from tests.functional.evolveapp_old import Thing


def named(name):
    def step(evolution):
        evolution.zodb_root.setdefault('log', []).append(name)
        evolution.zodb_root._p_changed = True

    step.__qualname__ = name
    return step


@pytest.fixture
def db(tmp_path):
    db = DB(FileStorage(str(tmp_path / 'Data.fs')))
    yield db
    db.close()


def commit_root(db, change):
    """Apply ``change(zodb_root)`` in a transaction of its own."""
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = db.open(transaction_manager=tm)
    try:
        change(conn.root())
        tm.commit()
    finally:
        conn.close()


def read_root(db, read):
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = db.open(transaction_manager=tm)
    try:
        return read(conn.root())
    finally:
        tm.abort()
        conn.close()


def used(db):
    """A database that is not new: something in its root."""
    commit_root(db, lambda root: root.__setitem__('app_root', 1))
    return db


def steps(*names, **constraints):
    return [Step(n, named(n), *constraints.get(n, ((), ()))) for n in names]


# -- the directive -----------------------------------------------------------


@pytest.fixture
def config(tmp_path):
    config = testing.setUp(
        autocommit=False,
        settings={'zodb_uri': f'file://{tmp_path}/Data.fs'},
    )
    config.include('pyramid_zeostore')
    yield config
    testing.tearDown()


def test_directive_default_name_order_and_introspection(config):
    config.add_evolution_step(evolveapp.second, after=f'{evolveapp.__name__}'
                              '.first')
    config.add_evolution_step(evolveapp.first)
    config.add_evolution_step('tests.functional.evolveapp:failing',
                              before=['tests.functional.evolveapp.first'])
    config.commit()
    ordered = get_steps(config.registry).ordered()
    assert [s.name for s in ordered] == [
        'tests.functional.evolveapp.failing',
        'tests.functional.evolveapp.first',
        'tests.functional.evolveapp.second',
    ]
    assert ordered[0].callable is evolveapp.failing
    intr = config.registry.introspector.get(
        'zodb evolution steps', 'tests.functional.evolveapp.second'
    )
    assert intr['after'] == ('tests.functional.evolveapp.first',)
    assert intr['callable'] is evolveapp.second


def test_directive_two_steps_with_one_name_conflict(config):
    config.add_evolution_step(evolveapp.first, name='one')
    config.add_evolution_step(evolveapp.second, name='one')
    with pytest.raises(ConfigurationConflictError):
        config.commit()


@pytest.mark.parametrize('kw, words', [
    ({'a': {'after': 'b'}, 'b': {'after': 'a'}}, 'cycle'),
    ({'a': {'before': 'nope'}}, "evolve step 'a': no step 'nope'"),
])
def test_directive_cycle_or_unknown_name_fails_commit(config, kw, words):
    for name, constraints in kw.items():
        config.add_evolution_step(named(name), name=name, **constraints)
    with pytest.raises(ConfigurationError, match=words):
        config.commit()


def test_directive_refuses_what_is_not_callable(config):
    config.add_evolution_step('tests.functional.evolveapp.RUNS', name='x')
    with pytest.raises(ConfigurationError, match='is not callable'):
        config.commit()


def test_steps_registry_refuses_a_name_twice():
    steps = EvolutionSteps()
    steps.add(Step('a', named('a')))
    with pytest.raises(ValueError, match="'a' is registered"):
        steps.add(Step('a', named('a')))
    assert steps.names() == ['a'] and len(steps) == 1
    assert steps.get('a').name == 'a' and steps.get('b') is None


def test_get_steps_of_a_registry_without_any():
    assert len(get_steps(Registry())) == 0


# -- running -----------------------------------------------------------------


def test_new_database_marks_every_step_finished_without_running(db):
    evolver = Evolver(db, steps('a', 'b'))
    finished, pending, new = evolver.status()
    assert finished == {} and new and [s.name for s in pending] == ['a', 'b']
    assert evolver.run() == []
    finished, pending, new = evolver.status()
    assert pending == [] and not new
    assert {v['by'] for v in finished.values()} == {'new database'}
    assert read_root(db, lambda r: 'log' not in r)


def test_run_in_order_records_notes_and_runs_once(db):
    used(db)
    announced = []
    evolver = Evolver(db, steps('a', 'b'), user='tester')
    results = evolver.run(announce=lambda s: announced.append(s.name))
    assert [r.name for r in results] == announced == ['a', 'b']
    assert read_root(db, lambda r: list(r['log'])) == ['a', 'b']
    finished, pending, _ = evolver.status()
    assert pending == [] and set(finished) == {'a', 'b'}
    assert finished['a']['by'] == 'tester'
    assert finished['a']['pid'] == os.getpid()
    assert finished['a']['host'] == socket.gethostname()
    # the claim is gone; a second run finds nothing to do
    assert read_root(db, lambda r: r[RECORD]['claim']) is None
    assert evolver.run() == []
    notes = [(t.description, t.user) for t in db.storage.iterator()]
    assert (b'evolve: a', b'tester') in notes
    assert (b'evolve: b', b'tester') in notes


def test_conflict_is_retried_and_counted_once(db):
    used(db)
    evolveapp.conflicting_once.raised = False
    step = Step('c', evolveapp.conflicting_once)
    (result,) = Evolver(db, [step]).run()
    assert result.attempts == 2
    assert read_root(db, lambda r: [n for n, _ in r[evolveapp.RUNS]]) == [
        'conflicting_once'
    ]


def test_conflicts_past_the_attempts_raise(db):
    used(db)
    evolveapp.conflicting_once.raised = False
    evolver = Evolver(db, [Step('c', evolveapp.conflicting_once)],
                      attempts=1)
    with pytest.raises(Exception, match='on purpose'):
        evolver.run()
    assert [s.name for s in evolver.status()[1]] == ['c']


def test_a_failing_step_stays_pending_and_the_claim_goes(db):
    used(db)
    evolver = Evolver(db, steps('a') + [Step('f', evolveapp.failing)])
    with pytest.raises(RuntimeError, match='on purpose'):
        evolver.run()
    finished, pending, _ = evolver.status()
    assert set(finished) == {'a'} and [s.name for s in pending] == ['f']
    assert read_root(db, lambda r: r[RECORD]['claim']) is None
    assert read_root(db, lambda r: evolveapp.RUNS not in r)


def test_dry_run_commits_nothing(db):
    used(db)
    evolver = Evolver(db, steps('a', 'b'))
    results = evolver.run(dry_run=True)
    assert [r.name for r in results] == ['a', 'b']
    assert read_root(db, lambda r: 'log' not in r and RECORD not in r)


def test_dry_run_of_a_new_database_runs_nothing(db):
    assert Evolver(db, steps('a')).run(dry_run=True) == []


def test_mark_finished(db):
    evolver = Evolver(db, steps('a'))
    assert evolver.mark_finished('a') is True
    assert evolver.mark_finished('a') is False
    assert evolver.status()[0]['a']['by'] == 'marked finished'


def make_things(db, count):
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    conn = db.open(transaction_manager=tm)
    try:
        evolveapp.make_things(
            conn.root(), count, 1000, lambda: (tm.commit(), tm.begin())
        )
        tm.abort()
    finally:
        conn.close()


def versions(db):
    return read_root(db, lambda r: sorted(
        {t.version for t in r[evolveapp.THINGS].values()}
    ))


def test_batches_commit_with_progress_and_bounded_cache(db, monkeypatch):
    make_things(db, 2500)
    monkeypatch.setenv('EVOLVEAPP_BATCH', '1000')
    shown = []

    def progress(desc):
        p = Progress(desc, mode='off')
        shown.append(p)
        return p

    before = len(list(db.storage.iterator()))
    (result,) = Evolver(db, [Step('t', evolveapp.touch_all)],
                        progress=progress).run()
    assert result.objects == 2500
    assert versions(db) == [2]
    stats = read_root(db, lambda r: dict(r[evolveapp.STATS]))
    assert stats['seen'] == 2500
    assert stats['peak_cache'] < 1500  # not 2500: emptied per batch
    # the claim, 3 batches, the record, the release
    assert len(list(db.storage.iterator())) - before == 6
    assert shown[0].done == 2500 and shown[0].total == 2500
    notes = [t.description for t in db.storage.iterator()]
    assert b'evolve: t (batch 2)' in notes


def test_batches_dry_run_takes_savepoints(db):
    make_things(db, 1500)
    Evolver(db, [Step('t', evolveapp.touch_all)]).run(dry_run=True)
    assert versions(db) == [1]


def test_a_conflicted_batch_is_replayed(db):
    make_things(db, 30)
    other = []

    def step(evolution):
        for thing in evolution.batches(
            list(evolution.zodb_root[evolveapp.THINGS].values()), 10
        ):
            if thing.number == 15 and not other:
                other.append(1)

                def bump(root):
                    root[evolveapp.THINGS]['0000015'].version = 100

                commit_root(db, bump)
            thing.version += 1

    (result,) = Evolver(db, [Step('s', step)]).run()
    assert result.objects == 30
    counts = read_root(db, lambda r: sorted(
        t.version for t in r[evolveapp.THINGS].values()
    ))
    assert counts == [2] * 29 + [101]


def test_a_batch_that_conflicts_too_often_raises(db):
    make_things(db, 10)

    def step(evolution):
        for thing in evolution.batches(
            evolution.zodb_root[evolveapp.THINGS].values(), 5
        ):
            if thing.number == 0:
                commit_root(db, lambda r: r[evolveapp.THINGS][
                    '0000000'].__setattr__('version', 7))
            thing.version += 1

    from ZODB.POSException import ConflictError

    with pytest.raises(ConflictError):
        Evolver(db, [Step('s', step)], attempts=2).run()


def test_batches_refuse_a_size_below_one(db):
    used(db)

    def step(evolution):
        list(evolution.batches([], 0))

    with pytest.raises(ValueError, match='size must be 1'):
        Evolver(db, [Step('s', step)]).run()


# -- the claim ---------------------------------------------------------------


def claim(db, **fields):
    info = dict(host='elsewhere', pid=1, at='then', by='x', since='then',
                token='other', beat=0.0)
    info.update(fields)

    def change(root):
        root['app_root'] = 1
        root[RECORD] = PersistentMapping(
            finished=PersistentMapping(), claim=info
        )

    commit_root(db, change)


def test_a_live_claim_is_waited_for_then_refused(db):
    import time

    claim(db, beat=time.time())
    evolver = Evolver(db, steps('a'), poll=0.001)
    with pytest.raises(EvolveError, match='elsewhere pid 1'):
        evolver.run(wait=0.01)
    assert read_root(db, lambda r: 'log' not in r)


def test_a_claim_released_meanwhile_leaves_nothing_pending(db):
    import time

    claim(db, beat=time.time())
    evolver = Evolver(db, steps('a'), poll=0.001)
    sleeps = []

    def finish_elsewhere(seconds):
        sleeps.append(seconds)

        def change(root):
            root[RECORD]['finished']['a'] = {'by': 'other'}
            root[RECORD]['claim'] = None

        commit_root(db, change)

    real_sleep = time.sleep
    evolve.time.sleep = finish_elsewhere
    try:
        assert evolver.run(wait=60) == []
    finally:
        evolve.time.sleep = real_sleep
    assert len(sleeps) == 1
    assert read_root(db, lambda r: 'log' not in r)


@pytest.mark.parametrize('fields', [
    {'beat': 0.0},  # no heartbeat for ages
    {'host': socket.gethostname(), 'pid': 2 ** 22 + 1},  # its pid is gone
])
def test_a_stale_claim_is_taken_over(db, fields):
    import time

    fields.setdefault('beat', time.time())
    claim(db, **fields)
    (result,) = Evolver(db, steps('a')).run(wait=0)
    assert result.name == 'a'


def test_alive():
    assert evolve._alive(os.getpid())
    assert not evolve._alive(2 ** 22 + 1)


def test_alive_of_another_users_process(monkeypatch):
    def kill(pid, sig):
        raise PermissionError

    monkeypatch.setattr(os, 'kill', kill)
    assert evolve._alive(1)


def test_a_lost_claim_stops_the_run(db):
    used(db)

    def thief(evolution):
        def change(root):
            root[RECORD]['claim'] = dict(root[RECORD]['claim'], token='x',
                                         host='thief', pid=9)

        commit_root(db, change)
        evolution.zodb_root['x'] = 1

    evolver = Evolver(db, [Step('s', thief)], attempts=2)
    with pytest.raises(EvolveError, match='taken over as stale by thief'):
        evolver.run()


def test_a_claim_gone_altogether_stops_the_run(db):
    used(db)

    def thief(evolution):
        commit_root(db, lambda r: r[RECORD].__setitem__('claim', None))
        evolution.zodb_root['x'] = 1

    with pytest.raises(EvolveError, match='lost its evolve claim$'):
        Evolver(db, [Step('s', thief)], attempts=2).run()


def test_the_heartbeat_is_renewed(db, monkeypatch):
    used(db)
    clock = [1000.0]
    monkeypatch.setattr(evolve.time, 'time', lambda: clock[0])

    def later(evolution):
        clock[0] += 5
        evolution.zodb_root['x'] = 1

    Evolver(db, [Step('s', later)]).run()
    # released: the last beat went with the step's own commit
    notes = [t.description for t in db.storage.iterator()]
    assert notes[-3:] == [b'evolve: claim', b'evolve: s', b'evolve: release']


def fail_commits(monkeypatch, evolver, error, which=None):
    """Make ``evolver``'s commits raise ``error``: the ``which``-th only
    (counting from 1; the others commit), or every one."""
    calls = []
    real = evolver.tm.commit

    def commit():
        calls.append(1)
        if which is None or len(calls) == which:
            raise error
        real()

    monkeypatch.setattr(evolver.tm, 'commit', commit)


@pytest.mark.parametrize('which', [1, 3])  # the claim, the release
def test_claim_and_release_retry_a_conflict(db, monkeypatch, which):
    from ZODB.POSException import ConflictError

    used(db)
    evolver = Evolver(db, steps('a'))
    fail_commits(monkeypatch, evolver, ConflictError('once'), which)
    assert [r.name for r in evolver.run()] == ['a']
    assert read_root(db, lambda r: r[RECORD]['claim']) is None


def test_mark_finished_retries_then_raises(db, monkeypatch):
    from ZODB.POSException import ConflictError

    evolver = Evolver(db, steps('a'), attempts=2)
    fail_commits(monkeypatch, evolver, ConflictError('always'))
    with pytest.raises(ConflictError):
        evolver.mark_finished('a')


def test_errors_in_claim_mark_and_release_abort(db, monkeypatch):
    evolver = Evolver(db, steps('a'), attempts=2)
    fail_commits(monkeypatch, evolver, OSError('disk'))
    with pytest.raises(OSError):
        evolver.mark_finished('a')
    with pytest.raises(OSError):
        evolver.run()


def test_release_errors(db, monkeypatch):
    from ZODB.POSException import ConflictError

    used(db)
    for error in (ConflictError('again'), OSError('disk')):
        evolver = Evolver(db, [], attempts=1)
        evolver.steps = steps('a')
        calls = []
        real = evolver.tm.commit

        def commit(calls=calls, error=error, real=real):
            calls.append(1)
            if len(calls) == 3:
                raise error
            real()

        monkeypatch.setattr(evolver.tm, 'commit', commit)
        with pytest.raises(type(error)):
            evolver.run()
        commit_root(db, lambda r: r[RECORD].__setitem__('claim', None))
        commit_root(db, lambda r: r[RECORD]['finished'].clear())


def test_release_of_a_claim_taken_meanwhile_leaves_it(db):
    used(db)

    def thief(evolution):
        evolution.zodb_root['x'] = 1

    evolver = Evolver(db, [Step('s', thief)])

    def steal(step):
        commit_root(db, lambda r: r[RECORD].__setitem__(
            'claim', dict(r[RECORD]['claim'], token='t')))

    with pytest.raises(EvolveError):
        evolver.run(announce=steal)
    assert read_root(db, lambda r: r[RECORD]['claim']['token']) == 't'


def test_a_step_finished_meanwhile_is_skipped(db):
    used(db)
    evolver = Evolver(db, steps('a'))
    evolver.token = None

    def finish(step):
        commit_root(db, lambda r: r[RECORD]['finished'].__setitem__(
            'a', {'by': 'another'}))

    (result,) = evolver.run(announce=finish)
    assert result.skipped
    assert read_root(db, lambda r: 'log' not in r)


# -- autoevolve --------------------------------------------------------------


def app_config(tmp_path, **settings):
    settings = {'zodb_uri': f'file://{tmp_path}/Data.fs',
                'zeostore.autoevolve': 'true', **settings}
    config = testing.setUp(autocommit=False, settings=settings)
    config.include('pyramid_zeostore')
    config.add_evolution_step(named('a'), name='a')
    return config


def test_autoevolve_runs_at_commit_and_closes(tmp_path):
    db = used(DB(FileStorage(str(tmp_path / 'Data.fs'))))
    db.close()
    try:
        config = app_config(tmp_path)
        config.commit()
        assert not config.registry.getUtility(IDatabases).is_open
    finally:
        testing.tearDown()
    db = DB(FileStorage(str(tmp_path / 'Data.fs')))
    try:
        assert read_root(db, lambda r: list(r['log'])) == ['a']
    finally:
        db.close()


def test_autoevolve_suspended_runs_nothing(tmp_path):
    db = used(DB(FileStorage(str(tmp_path / 'Data.fs'))))
    db.close()
    try:
        config = app_config(tmp_path)
        with evolve.suspended():
            config.commit()
    finally:
        testing.tearDown()
    db = DB(FileStorage(str(tmp_path / 'Data.fs')))
    try:
        assert read_root(db, lambda r: 'log' not in r)
    finally:
        db.close()


def test_autoevolve_without_steps_opens_nothing(tmp_path):
    config = testing.setUp(autocommit=False, settings={
        'zodb_uri': f'file://{tmp_path}/Data.fs',
        'zeostore.autoevolve': 'true'})
    try:
        config.include('pyramid_zeostore')
        config.commit()
    finally:
        testing.tearDown()
    assert not (tmp_path / 'Data.fs').exists()


def test_includeme_alone_parses_the_settings(tmp_path):
    config = testing.setUp(autocommit=False, settings={
        'zodb_uri': 'memory://', 'zeostore.autoevolve': 'no'})
    try:
        config.include('pyramid_zeostore.evolve')
        config.add_evolution_step(named('a'), name='a')
        config.commit()
        assert get_steps(config.registry).names() == ['a']
    finally:
        testing.tearDown()


def test_autoevolve_setting_is_checked(tmp_path):
    with pytest.raises(ConfigurationError, match='zeostore.autoevolve'):
        app_config(tmp_path, **{'zeostore.autoevolve': 'maybe'})
    testing.tearDown()


# -- pzeo evolve -------------------------------------------------------------


def write_ini(tmp_path, kind='basic'):
    ini = tmp_path / 'app.ini'
    ini.write_text(
        '[app:main]\n'
        'use = call:tests.functional.evolveapp:main\n'
        f'zodb_uri = file://{tmp_path}/Data.fs\n'
        f'evolveapp.steps = {kind}\n'
    )
    return str(ini)


def pzeo(capsys, *args):
    status = cli.main(['evolve', *args])
    out, err = capsys.readouterr()
    return status, out, err


FIRST = 'tests.functional.evolveapp.first'
SECOND = 'tests.functional.evolveapp.second'
NEW = 'tests.functional.evolveapp_new.Item'


def test_pzeo_evolve_list_run_mark(tmp_path, capsys):
    ini = write_ini(tmp_path)
    db = used(DB(FileStorage(str(tmp_path / 'Data.fs'))))
    db.close()
    status, out, _ = pzeo(capsys, ini)
    assert status == 0
    assert out.splitlines() == [
        f'pending   {FIRST}', f'pending   {SECOND}',
        '2 pending, 0 finished',
    ]
    status, out, err = pzeo(capsys, ini, '--dry-run', '-q')
    assert status == 0 and f'running {FIRST} ...' in out
    assert 'ran and aborted (dry run) 2 steps' in out
    status, out, _ = pzeo(capsys, ini, '--mark-finished', FIRST)
    assert (status, out) == (0, f'{FIRST}: marked finished\n')
    status, out, _ = pzeo(capsys, ini, '--mark-finished', FIRST)
    assert (status, out) == (0, f'{FIRST}: already finished\n')
    status, out, _ = pzeo(capsys, ini, '--run', '-q')
    assert status == 0
    assert f'{SECOND}: done in' in out and 'ran 1 steps' in out
    status, out, _ = pzeo(capsys, ini)
    assert out.startswith(f'finished  {FIRST}: ')
    assert ' by marked finished on ' in out
    assert out.endswith('0 pending, 2 finished\n')


def test_pzeo_evolve_new_database_and_no_steps(tmp_path, capsys):
    ini = write_ini(tmp_path)
    status, out, _ = pzeo(capsys, ini)
    assert 'new database: --run marks these finished' in out
    ini = write_ini(tmp_path, 'none')
    status, out, _ = pzeo(capsys, ini)
    assert status == 0 and out.startswith('no evolve steps registered')


def test_pzeo_evolve_mark_unknown_is_a_usage_error(tmp_path, capsys):
    status, _, err = pzeo(capsys, write_ini(tmp_path), '--mark-finished',
                          'nope')
    assert status == 2
    assert f"no evolve step 'nope'; the steps are: {FIRST}, {SECOND}" in err


@pytest.mark.parametrize('args, words', [
    (['--rename', f'a.B={NEW}', '--run'], '--rename goes alone'),
    (['--db', 'x'], '--db goes with --rename'),
    (['--dry-run', '--mark-finished', 'x'], 'not --mark-finished'),
])
def test_pzeo_evolve_usage_errors(tmp_path, capsys, args, words):
    status, _, err = pzeo(capsys, write_ini(tmp_path), *args)
    assert status == 2 and words in err


@pytest.mark.parametrize('rename, words', [
    ('Thing=Item', 'expected old.module.Class=new.module.Class'),
    (f'{NEW}={NEW}', 'renames a class to itself'),
    ('a.B=no.such.Cls', "no.such.Cls cannot be imported "
     "(ModuleNotFoundError: No module named 'no'): the new name must be "
     'the class as the code has it now'),
    ('a.B=tests.functional.evolveapp_new.Nope', 'cannot be imported'),
    ('a.B=tests.functional.evolveapp_new.Persistent.__init__',
     'cannot be imported'),
    ('a.B=tests.functional.evolveapp_new.__doc__', 'is not a class'),
])
def test_pzeo_evolve_bad_rename(tmp_path, capsys, rename, words):
    # Refused before anything is read: zodbupdate would log each record
    # it cannot write with a class that does not import, and go on.
    with pytest.raises(SystemExit) as e:
        cli.main(['evolve', write_ini(tmp_path), '--rename', rename])
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_pzeo_evolve_rename_that_skips_a_record_fails(
    tmp_path, capsys, monkeypatch
):
    import logging

    from pyramid_zeostore.commands import evolve as command

    called = command.Updater.__call__

    def skipping(self):
        logging.getLogger('zodbupdate.serialize').error(
            'Error: cannot pickle modified record: (as zodbupdate says)'
        )
        return called(self)

    monkeypatch.setattr(command.Updater, '__call__', skipping)
    status, out, _ = pzeo(capsys, write_ini(tmp_path), '--rename',
                          f'a.B={NEW}', '-q')
    assert status == 1
    assert 'FAILED: 1 records could not be rewritten' in out


def test_pzeo_evolve_failing_step_and_claim(tmp_path, capsys):
    import time

    ini = write_ini(tmp_path, 'failing')
    db = DB(FileStorage(str(tmp_path / 'Data.fs')))
    used(db)
    db.close()
    status, out, err = pzeo(capsys, ini, '--run', '-q')
    assert status == 1 and 'RuntimeError: this step fails' in err
    assert 'FAILED: the step is still pending' in out
    db = DB(FileStorage(str(tmp_path / 'Data.fs')))
    claim(db, beat=time.time())
    db.close()
    status, out, err = pzeo(capsys, ini, '--run', '--wait', '0')
    assert status == 1 and 'is running evolve steps' in err


def test_pzeo_evolve_rename(tmp_path, capsys):
    ini = write_ini(tmp_path)
    db = DB(FileStorage(str(tmp_path / 'Data.fs')))
    commit_root(db, lambda r: r.__setitem__(
        'things', OOBTree({'a': Thing(1), 'b': Thing(2)})))
    db.close()
    rename = ('tests.functional.evolveapp_old.Thing='
              'tests.functional.evolveapp_new.Item')
    status, out, _ = pzeo(capsys, ini, '--rename', rename, '--dry-run',
                          '-q')
    assert (status, out) == (0, 'zodb_uri: would rewrite 3 records\n')
    status, out, _ = pzeo(capsys, ini, '--rename', rename, '--db', '')
    assert (status, out) == (0, 'zodb_uri: rewrote 3 records\n')
    db = DB(FileStorage(str(tmp_path / 'Data.fs')))
    try:
        kinds = read_root(db, lambda r: {
            type(t).__module__ + '.' + type(t).__name__
            for t in r['things'].values()
        })
    finally:
        db.close()
    assert kinds == {'tests.functional.evolveapp_new.Item'}


def test_pzeo_evolve_rename_of_a_storage_it_cannot_read(
    tmp_path, capsys, monkeypatch
):
    from pyramid_zeostore.commands import evolve as command

    def records(self):
        raise SystemExit("Don't know how to iterate")
        yield  # pragma: no cover - a generator

    monkeypatch.setattr(command.Updater, 'records', property(records))
    status, _, err = pzeo(capsys, write_ini(tmp_path), '--rename',
                          f'a.B={NEW}')
    assert status == 2 and 'zodbupdate cannot read this storage' in err


def test_a_step_gets_the_app_root_of_the_appmaker(db):
    used(db)
    seen = []

    def step(evolution):
        seen.append((evolution.name, evolution.dry_run))
        evolution.root['made'] = True

    def appmaker(zodb_root):
        return zodb_root.setdefault('mine', PersistentMapping())

    Evolver(db, [Step('s', step)], appmaker).run()
    assert seen == [('s', False)]
    assert read_root(db, lambda r: r['mine']['made'])


def steps_of(*names):
    steps = EvolutionSteps()
    for name in names:
        steps.add(Step(name, named(name)))
    return steps


def test_bootstrap_of_a_new_database_records_its_steps_finished(db):
    from pyramid_zeostore.root import bootstrap, default_appmaker

    bootstrap(db, default_appmaker, steps_of('a', 'b'))
    finished = read_root(db, lambda r: dict(r[RECORD]['finished']))
    assert sorted(finished) == ['a', 'b']
    assert finished['a']['by'] == evolve.NEW == 'new database'
    assert finished['a']['pid'] == os.getpid()
    assert finished['a']['host'] == socket.gethostname()
    # A step added later is pending: the database exists now.
    steps = steps_of('a', 'b', 'c')
    bootstrap(db, default_appmaker, steps)
    assert [s.name for s in Evolver(db, steps.ordered()).status()[1]] == [
        'c'
    ]


def test_bootstrap_of_a_database_made_before_the_steps_leaves_them(db):
    from pyramid_zeostore.root import bootstrap, default_appmaker

    bootstrap(db, default_appmaker)  # no steps yet
    bootstrap(db, default_appmaker, steps_of('a'))
    assert read_root(db, lambda r: RECORD in r) is False
    finished, pending, new = Evolver(db, steps_of('a').ordered()).status()
    assert finished == {} and [s.name for s in pending] == ['a']
    assert new is False
    # Without steps registered, a new database gets no record.
    other = DB(None)
    bootstrap(other, default_appmaker, EvolutionSteps())
    assert read_root(other, lambda r: sorted(r)) == ['app_root']
    other.close()


def test_the_startup_check_records_the_registrys_steps(tmp_path):
    from pyramid_zeostore.root import check_databases

    config = testing.setUp(settings={
        'zodb_uri': f'file://{tmp_path}/Data.fs',
    })
    try:
        config.include('pyramid_zeostore')
        config.add_evolution_step(named('s1'))
        config.commit()
        check_databases(config.registry)
        db = DB(FileStorage(str(tmp_path / 'Data.fs')))
        try:
            finished = read_root(db, lambda r: dict(r[RECORD]['finished']))
        finally:
            db.close()
        assert list(finished) == ['tests.unit.test_evolve.s1']
    finally:
        testing.tearDown()


def test_pzeo_evolve_names_an_app_that_cannot_load(tmp_path, capsys):
    ini = tmp_path / 'app.ini'
    ini.write_text(
        '[app:main]\nuse = call:no_such_module_here:main\n'
        f'zodb_uri = file://{tmp_path}/Data.fs\n'
    )
    status, out, err = pzeo(capsys, str(ini))
    assert status == 2 and out == ''
    assert err == (
        f'pzeo evolve: cannot load [app:main] of {ini}: '
        "ModuleNotFoundError: No module named 'no_such_module_here' "
        f'(pserve {ini} shows the traceback)\n'
    )
    # A configuration error is named as one.
    ini.write_text(
        '[app:main]\nuse = call:tests.functional.evolveapp:main\n'
        f'zodb_uri = file://{tmp_path}/Data.fs\n'
        'zeostore.autoevolve = maybe\n'
    )
    status, _, err = pzeo(capsys, str(ini))
    assert status == 2
    assert err.startswith('pzeo evolve: configuration error: ')
    assert 'zeostore.autoevolve' in err
