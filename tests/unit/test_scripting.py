"""open_root / open_db / retrying on real file and memory storages."""

from __future__ import annotations

import pytest
from pyramid.exceptions import ConfigurationError
from ZODB.POSException import ConflictError

from pyramid_zeostore import Folder
from pyramid_zeostore.app.content import Item
from pyramid_zeostore.scripting import is_ini, open_db, open_root, retrying


@pytest.fixture
def fs_uri(tmp_path):
    return f'file://{tmp_path}/Data.fs'


def read(uri, name):
    """The attributes of child ``name`` of the app root, or None."""
    with open_db(uri) as db:
        conn = db.open()
        try:
            child = conn.root()['app_root'].get(name)
            if child is None:
                return None
            child._p_activate()  # a ghost has no __dict__ yet
            return dict(vars(child))
        finally:
            conn.close()


def test_is_ini(tmp_path):
    ini = tmp_path / 'app.conf'
    ini.write_text('[app:main]\n')
    assert is_ini('development.ini')
    assert is_ini('production.ini#myapp')
    assert is_ini(str(ini))
    assert not is_ini('zeo://var/zeo.sock')
    assert not is_ini('file:///tmp/x.ini')  # a URI, whatever it ends with
    assert not is_ini('memory://')


def test_with_commits_at_exit_and_bootstraps(fs_uri):
    with open_root(fs_uri) as root:
        assert isinstance(root, Folder)  # the default appmaker made it
        root.add('a', Item(title='A'))
    assert read(fs_uri, 'a')['title'] == 'A'


def test_with_aborts_when_the_block_raises(fs_uri):
    with pytest.raises(RuntimeError):
        with open_root(fs_uri) as root:
            root.add('a', Item())
            raise RuntimeError('no')
    assert read(fs_uri, 'a') is None


def test_a_custom_appmaker(fs_uri):
    def appmaker(zodb_root):
        return zodb_root.setdefault('mine', Folder())

    with open_root(fs_uri, appmaker=appmaker) as root:
        root.add('x', Item())
    with open_db(fs_uri) as db:
        conn = db.open()
        assert 'x' in conn.root()['mine']
        assert 'app_root' not in conn.root()
        conn.close()


def conflicting(fails, exc=ConflictError):
    """A block body that raises ``exc`` on its first ``fails`` runs."""
    runs = []

    def body(root):
        runs.append(1)
        root.add(f'run-{len(runs)}', Item())
        if len(runs) <= fails:
            raise exc('conflict')

    return body, runs


@pytest.mark.parametrize('form', ['open_root', 'retrying'])
def test_attempts_retry_conflicts(fs_uri, form):
    body, runs = conflicting(2)
    opener = open_root if form == 'open_root' else retrying
    for attempt in opener(fs_uri, attempts=3):
        with attempt as root:
            body(root)
    assert len(runs) == 3
    with open_db(fs_uri) as db:
        conn = db.open()
        names = set(conn.root()['app_root'].keys())
        conn.close()
    assert names == {'run-3'}  # the failed attempts were aborted


def test_the_last_conflict_is_raised(fs_uri):
    body, runs = conflicting(5)
    with pytest.raises(ConflictError):
        for attempt in open_root(fs_uri, attempts=2):
            with attempt as root:
                body(root)
    assert len(runs) == 2


def test_other_errors_are_not_retried(fs_uri):
    body, runs = conflicting(5, KeyError)
    with pytest.raises(KeyError):
        for attempt in open_root(fs_uri, attempts=3):
            with attempt as root:
                body(root)
    assert len(runs) == 1


def test_a_conflict_at_commit_is_retried(fs_uri, monkeypatch):
    commits = []
    for attempt in open_root(fs_uri, attempts=3):
        with attempt as root:
            root.add(f'n{len(commits)}', Item())
            if not commits:
                real = attempt.opener.tm.commit

                def commit():
                    commits.append(1)
                    raise ConflictError('at commit')

                monkeypatch.setattr(attempt.opener.tm, 'commit', commit)
            else:
                monkeypatch.setattr(attempt.opener.tm, 'commit', real)
                commits.append(2)
    assert commits == [1, 2]
    assert read(fs_uri, 'n0') is None
    assert read(fs_uri, 'n1') is not None


def test_a_non_conflict_at_commit_is_raised(fs_uri, monkeypatch):
    def commit():
        raise ValueError('vote failed')

    with pytest.raises(ValueError):
        for attempt in open_root(fs_uri, attempts=3):
            with attempt as root:
                root.add('n', Item())
                monkeypatch.setattr(attempt.opener.tm, 'commit', commit)
    assert read(fs_uri, 'n') is None


def test_an_appmaker_that_fails_leaves_nothing_open(fs_uri):
    calls = []

    def appmaker(zodb_root):
        calls.append(1)
        if len(calls) > 1:  # bootstrap passes, the attempt fails
            raise LookupError('broken root')
        return zodb_root

    opener = open_root(fs_uri, appmaker=appmaker)
    with pytest.raises(LookupError):
        with opener:
            pass
    assert opener.databases is None


def test_attempts_must_be_positive(fs_uri):
    with pytest.raises(ValueError, match='attempts'):
        open_root(fs_uri, attempts=0)


def test_a_bad_uri_names_the_setting():
    with pytest.raises(ConfigurationError, match='zodb_uri'):
        with open_root('nosuchscheme://x'):
            pass


def test_a_failed_open_closes_what_it_opened(tmp_path):
    def appmaker(zodb_root):
        raise LookupError('no root')

    opener = open_root(f'file://{tmp_path}/Data.fs', appmaker=appmaker)
    with pytest.raises(LookupError):
        with opener:
            pass
    assert opener.databases is None


def write_app_ini(path, uri, app='use = egg:pyramid_zeostore', extra=''):
    path.write_text(
        f'[app:main]\n{app}\nzodb_uri = {uri}\n'
        'zeostore.check_on_startup = false\n'
        f'{extra}\n'
    )
    return str(path)


def test_an_ini_gives_the_apps_databases_and_appmaker(tmp_path, fs_uri):
    ini = write_app_ini(
        tmp_path / 'app.ini', fs_uri,
        extra='zeostore.appmaker = tests.unit.test_scripting.other_appmaker',
    )
    with open_root(ini) as root:
        root.add('from-ini', Item())
    with open_db(ini) as db:
        conn = db.open()
        assert 'from-ini' in conn.root()['other']
        conn.close()


def other_appmaker(zodb_root):
    return zodb_root.setdefault('other', Folder())


def test_an_ini_section_by_name(tmp_path, fs_uri):
    path = tmp_path / 'app.ini'
    path.write_text(
        f'[app:other]\nuse = egg:pyramid_zeostore\nzodb_uri = {fs_uri}\n'
        'zeostore.check_on_startup = false\n'
    )
    targets = {'hash': (f'{path}#other', None), 'name': (str(path), 'other')}
    for child, (target, name) in targets.items():
        with open_root(target, name) as root:
            root.add(child, Item())
    assert read(fs_uri, 'hash') is not None
    assert read(fs_uri, 'name') is not None


def test_an_ini_with_a_pipeline(tmp_path, fs_uri):
    path = tmp_path / 'app.ini'
    path.write_text(
        '[pipeline:main]\npipeline = noop zeostore\n'
        '[filter:noop]\nuse = call:tests.unit.test_scripting:noop_filter\n'
        f'[app:zeostore]\nuse = egg:pyramid_zeostore\nzodb_uri = {fs_uri}\n'
        'zeostore.check_on_startup = false\n'
    )
    with open_root(str(path)) as root:
        root.add('piped', Item())
    assert read(fs_uri, 'piped') is not None


def noop_filter(global_conf, **local_conf):
    def wrap(app):
        def filtered(environ, start_response):
            return app(environ, start_response)

        return filtered

    return wrap


def test_an_ini_without_the_package(tmp_path):
    path = tmp_path / 'app.ini'
    path.write_text(
        '[app:main]\nuse = call:tests.unit.test_scripting:bare_app\n'
    )
    with pytest.raises(ConfigurationError, match='include pyramid_zeostore'):
        with open_root(str(path)):
            pass


def bare_app(global_config, **settings):
    from pyramid.config import Configurator

    with Configurator(settings=settings) as config:
        pass
    return config.make_wsgi_app()
