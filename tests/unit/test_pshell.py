"""pyramid_zeostore.pshell.setup on a FileStorage app (no ZEO needed)."""

from __future__ import annotations

import pytest
import transaction

from pyramid_zeostore import compat, get_databases
from pyramid_zeostore.app.content import Item
from pyramid_zeostore.folder import Folder
from pyramid_zeostore.pshell import setup

INI = """\
[app:main]
use = call:pyramid_zeostore:main
zodb_uri = file://{data}

[pshell]
setup = pyramid_zeostore.pshell.setup
"""


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / 'app.ini'
    path.write_text(INI.format(data=tmp_path / 'Data.fs'))
    return str(path)


@pytest.fixture
def session(ini):
    """Open pshell sessions: ``open()`` -> (env, generator)."""
    from pyramid.paster import bootstrap

    opened = []

    def open_():
        env = bootstrap(ini)
        gen = setup(env)
        next(gen)
        opened.append((env, gen))
        return env, gen

    yield open_
    for env, gen in opened:
        gen.close()
        env['closer']()
        get_databases(env['registry']).close()


def finish(env, gen):
    """End a session as pshell does: setup's context, then the closer."""
    gen.close()
    env['closer']()
    get_databases(env['registry']).close()


def names_on_disk(ini) -> set:
    """What another process would read: a fresh app on the same file."""
    from pyramid.paster import bootstrap

    env = bootstrap(ini)
    try:
        return set(env['root'].keys())
    finally:
        env['closer']()
        get_databases(env['registry']).close()


def test_environment(session):
    env, _ = session()
    assert isinstance(env['root'], Folder)
    assert env['root'] is env['zodb_root']['app_root']
    assert env['request'].root is env['root']
    assert env['conn'] is env['root']._p_jar
    assert env['db'] is get_databases(env['registry']).get('')
    assert env['tm'] is env['request'].tm
    # the thread's manager, as pshell had it with pyramid_zodbconn: a
    # bare transaction.commit() saves too
    assert env['tm'] is transaction.manager
    assert compat.current_transaction(env['tm']) is not None  # begun
    assert callable(env['commit']) and callable(env['abort'])
    assert 'Commit' in env['commit'].__doc__


def test_commit_saves_and_begins_a_new_transaction(session, ini):
    env, gen = session()
    txn = env['tm'].get()
    env['root']['a'] = Item()
    env['commit']()
    assert env['tm'].get() is not txn  # a fresh one
    env['root']['b'] = Item()  # not committed
    finish(env, gen)
    assert names_on_disk(ini) == {'a'}


def test_uncommitted_changes_are_aborted_at_exit(session, ini):
    env, gen = session()
    env['root']['lost'] = Item()
    env['zodb_root']['other'] = 1
    finish(env, gen)
    assert names_on_disk(ini) == set()
    env2, _ = session()
    assert 'other' not in env2['zodb_root']


def test_abort_drops_changes_and_begins_a_new_transaction(session, ini):
    env, gen = session()
    env['root']['x'] = Item()
    txn = env['tm'].get()
    env['abort']()
    assert env['tm'].get() is not txn
    assert 'x' not in env['root']
    env['root']['y'] = Item()
    env['commit']()
    finish(env, gen)
    assert names_on_disk(ini) == {'y'}


def test_exit_after_a_bare_tm_commit(session, ini):
    # tm.commit() without commit(): no transaction is left; leaving the
    # shell must not fail on that.
    env, gen = session()
    env['root']['z'] = Item()
    env['tm'].commit()
    assert compat.current_transaction(env['tm']) is None
    finish(env, gen)
    assert names_on_disk(ini) == {'z'}


def test_a_classic_transaction_commit_saves(session, ini):
    # What users of pyramid_zodbconn type in pshell.
    env, gen = session()
    env['root']['classic'] = Item()
    transaction.commit()
    env['root']['dropped'] = Item()
    finish(env, gen)
    assert names_on_disk(ini) == {'classic'}


def test_exit_with_a_doomed_transaction(session, ini):
    env, gen = session()
    env['root']['doomed'] = Item()
    env['tm'].doom()
    finish(env, gen)
    assert names_on_disk(ini) == set()


def test_exit_after_a_failed_commit(session, ini):
    env, gen = session()

    class Boom:
        def sortKey(self):
            return 'boom'

        def __getattr__(self, name):
            def fail(*args):
                if name == 'tpc_vote':
                    raise RuntimeError('vote failed')

            return fail

    env['root']['half'] = Item()
    env['tm'].get().join(Boom())
    with pytest.raises(RuntimeError, match='vote failed'):
        env['commit']()
    finish(env, gen)  # the failed transaction is aborted, no error
    assert names_on_disk(ini) == set()


def test_setup_failure_aborts_the_transaction(ini):
    from pyramid.paster import bootstrap

    env = bootstrap(ini)
    tm = env['request'].tm

    def broken_root_factory(request):
        raise LookupError('no root')

    env['root_factory'] = broken_root_factory
    gen = setup(env)
    try:
        with pytest.raises(LookupError):
            next(gen)
        # begun by setup, aborted on the way out
        assert compat.current_transaction(tm) is None
    finally:
        env['closer']()
        get_databases(env['registry']).close()


def test_pshell_command_runs_setup(ini):
    """pshell itself: the [pshell] section's setup, a scripted shell."""
    from pyramid.scripts.pshell import PShellCommand

    seen = {}

    def shell(env, help):
        seen.update(env)
        seen['help'] = help
        env['root']['shell'] = Item()
        env['commit']()
        env['root']['dropped'] = Item()

    command = PShellCommand(['pshell', ini], quiet=True)
    try:
        assert command.run(shell=shell) is None
        assert {'root', 'zodb_root', 'conn', 'db', 'tm', 'commit',
                'abort'} <= set(seen)
        assert 'commit' in seen['help']
    finally:
        get_databases(seen['registry']).close()
    assert names_on_disk(ini) == {'shell'}
