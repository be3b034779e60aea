"""``pzeo create`` and the ``zeostore`` scaffold.

Fast tests run ``pzeo create`` in-process (every backend, every refusal)
and check what it wrote: ruff-clean with the project's own config, valid
settings. The slow ones do what a new user does, one test per backend:
build this checkout's wheel (once), install it in a fresh venv, run
``pzeo create`` *from that wheel* (so the template must ship in it),
install the project, run **its own** test suite, then ``pserve
development.ini``: the front page shows the root folder, a form POST
writes a document, and after a restart it is still there.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

from pyramid_zeostore import cli, zeoserver
from pyramid_zeostore.commands import create
from pyramid_zeostore.settings import parse_settings
from tests.functional import conftest as fconf

IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')
BACKENDS = create.BACKENDS
SCHEMES = {'zeo': 'zeo://', 'file': 'file://', 'relstorage-sqlite': 'sqlite://'}
PIP_TIMEOUT = 900
TEST_TIMEOUT = 600


def run_create(capsys, *args) -> tuple[int, str, str]:
    status = cli.main(['create', *args])
    out, err = capsys.readouterr()
    return status, out, err


def app_settings(ini: str) -> dict:
    """The [app:main] settings of a generated ini, read without loading
    the app (its egg is not installed here)."""
    parser = configparser.ConfigParser(
        defaults={'here': os.path.dirname(ini), '__file__': ini}
    )
    parser.read(ini)
    return dict(parser['app:main'])


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """cookiecutter writes a replay file under ~: not the real one."""
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))


# -- pzeo create, in-process -----------------------------------------------


@pytest.mark.parametrize('backend', BACKENDS)
def test_create_writes_a_complete_project(tmp_path, capsys, backend):
    status, out, err = run_create(
        capsys, 'My Site', '--backend', backend, '--output-dir',
        str(tmp_path),
    )
    assert status == 0, err
    project = tmp_path / 'my_site'
    assert f'created {project} ({backend} backend)' in out
    for name in (
        'setup.py', 'pyproject.toml', 'README.md', 'Makefile', '.gitignore',
        'development.ini', 'production.ini', 'zeo.conf', 'var/.gitkeep',
        'my_site/__init__.py', 'my_site/models.py', 'my_site/views.py',
        'my_site/templates/layout.jinja2', 'my_site/templates/folder.jinja2',
        'my_site/templates/document.jinja2', 'my_site/static/style.css',
        'tests/conftest.py', 'tests/test_functional.py',
        'tests/test_views.py', 'tests/test_models.py', 'tests/test_config.py',
    ):
        assert (project / name).is_file(), name
    ignored = (project / '.gitignore').read_text().split()
    assert {'var/*', '*.fs*', '.venv/'} <= set(ignored)
    readme = (project / 'README.md').read_text()
    assert '# My Site' in readme
    assert 'make serve' in readme and 'make test' in readme
    # Jinja2 page templates are copied as they are, not rendered.
    assert '{{ title }}' in (
        project / 'my_site/templates/layout.jinja2'
    ).read_text()
    assert 'title = "My Site"' in (project / 'my_site/models.py').read_text()
    pyproject = (project / 'pyproject.toml').read_text()
    assert 'name = "my_site"' in pyproject
    from importlib.metadata import version

    assert f'"pyramid_zeostore>={version("pyramid_zeostore")}"' in pyproject
    assert ('"RelStorage>=4.0"' in pyproject) is (
        backend == 'relstorage-sqlite'
    )
    assert 'zeostore_ini = "development.ini"' in pyproject

    # Lint-clean with the project's own ruff settings, and Python.
    lint = subprocess.run(
        [os.path.join(fconf.BIN, 'ruff'), 'check', '--no-cache', '.'],
        cwd=project, capture_output=True, text=True, timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for path in project.rglob('*.py'):
        compile(path.read_text(), str(path), 'exec')


@pytest.mark.parametrize('backend', BACKENDS)
def test_generated_settings_are_valid(tmp_path, capsys, backend):
    if backend == 'relstorage-sqlite':
        pytest.importorskip('relstorage')
    assert run_create(
        capsys, 'Demo', '--backend', backend, '-o', str(tmp_path)
    )[0] == 0
    project = tmp_path / 'demo'
    dev = parse_settings(app_settings(str(project / 'development.ini')))
    prod = parse_settings(app_settings(str(project / 'production.ini')))
    for settings in (dev, prod):
        assert settings.primary.uri.startswith(SCHEMES[backend])
        assert str(project / 'var') in settings.primary.uri
    assert dev.autostart is (backend == 'zeo')
    assert prod.autostart is False
    if backend == 'zeo':
        assert dev.zeo_conf == str(project / 'zeo.conf')
        conf = zeoserver.read_zeo_conf(dev.zeo_conf)
        assert conf.address == str(project / 'var' / 'zeo.sock')
        assert dev.primary.factory.address == conf.address


def test_create_names(tmp_path, capsys):
    status, out, _ = run_create(
        capsys, '  Big-Shop.v2 ', '--backend', 'file', '-o', str(tmp_path),
    )
    assert status == 0
    assert (tmp_path / 'big_shop_v2' / 'big_shop_v2' / 'views.py').is_file()
    assert "# Big-Shop.v2" in (
        tmp_path / 'big_shop_v2' / 'README.md'
    ).read_text()
    status, out, _ = run_create(
        capsys, 'Shop', '--package', 'shopapp', '-o', str(tmp_path)
    )
    assert status == 0 and (tmp_path / 'shopapp' / 'shopapp').is_dir()


class Installed:
    """pyramid_zeostore's distribution, as installed from ``url`` (None:
    from a package index, with no direct_url.json)."""

    def __init__(self, url):
        self.url = url

    def read_text(self, name):
        assert name == 'direct_url.json'
        return None if self.url is None else f'{{"url": "{self.url}"}}'


def test_create_next_steps_relative_to_here(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(create, 'distribution', lambda name: Installed(None))
    status, out, _ = run_create(capsys, 'here')
    assert status == 0
    assert 'next: cd here && make test && make serve\n' in out
    assert (tmp_path / 'here' / 'zeo.conf').is_file()


def test_create_next_steps_when_not_from_an_index(
    tmp_path, capsys, monkeypatch
):
    # A project's own .venv cannot install a pyramid_zeostore that is
    # not on the index: the steps use the environment pzeo runs in.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        create, 'distribution', lambda name: Installed('file:///src/x.whl')
    )
    status, out, _ = run_create(capsys, 'here')
    assert status == 0
    assert (
        f'next: cd here && make test VENV={sys.prefix} && make serve '
        f'VENV={sys.prefix} (pyramid_zeostore is installed from '
        'file:///src/x.whl, not a package index'
    ) in out
    def missing(name):
        raise create.PackageNotFoundError(name)

    monkeypatch.setattr(create, 'distribution', missing)  # a bare checkout
    assert 'pyramid_zeostore is installed from a checkout' in (
        create.next_steps('here')
    )
    monkeypatch.setattr(sys, 'prefix', sys.base_prefix)  # no virtualenv
    assert create.next_steps('here').startswith(
        f"next: cd here && {sys.executable} -m pip install -e '.[testing]'"
    )


@pytest.mark.parametrize('name, package, message', [
    ('class', None, "package name 'class': expected a lower-case"),
    ('2fast', None, "package name '2fast': expected"),
    ('ok', 'Shop', "package name 'Shop': expected"),
    ('ok', 'café', "package name 'café': expected ASCII letters"),
    ('Über Site', None, "'über_site': expected ASCII letters, digits and "
     'underscores only (a distribution and its imports are ASCII); pass '
     '--package, e.g. --package uber_site'),
    ('json', None, "package name 'json' is taken"),
    ('Pyramid', None, "package name 'pyramid' is taken"),
    ('say "hi"', 'hi', 'give a name without quotes'),
    ('   ', 'blank', 'give a name without quotes'),
])
def test_create_refuses_bad_names(tmp_path, capsys, name, package, message):
    args = [name, '-o', str(tmp_path)]
    if package:
        args += ['--package', package]
    status, out, err = run_create(capsys, *args)
    assert status == 2
    assert message in err and err.startswith('pzeo create: ')
    assert os.listdir(tmp_path) == ['home'] or not os.listdir(tmp_path)


def test_create_refuses_an_existing_folder(tmp_path, capsys):
    (tmp_path / 'taken').mkdir()
    (tmp_path / 'taken' / 'mine.txt').write_text('keep me')
    status, _, err = run_create(capsys, 'taken', '-o', str(tmp_path))
    assert status == 1
    assert f'{tmp_path / "taken"} exists already' in err
    assert os.listdir(tmp_path / 'taken') == ['mine.txt']


def test_create_without_cookiecutter(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'cookiecutter.main', None)
    status, _, err = run_create(capsys, 'nope', '-o', str(tmp_path))
    assert status == 2
    assert 'pip install "pyramid_zeostore[scaffold]"' in err


def test_create_reports_a_cookiecutter_failure(tmp_path, capsys,
                                               monkeypatch):
    import cookiecutter.main
    from cookiecutter.exceptions import CookiecutterException

    def fail(*args, **kw):
        raise CookiecutterException('template broken')

    monkeypatch.setattr(cookiecutter.main, 'cookiecutter', fail)
    status, _, err = run_create(capsys, 'nope', '-o', str(tmp_path))
    assert status == 1
    assert err == 'pzeo create: cookiecutter: template broken\n'


def test_create_in_a_bare_checkout(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(create, 'version', lambda name: '9.9')
    assert create._version() == '9.9'  # installed: its own version
    monkeypatch.setattr(create, 'version', missing)
    assert create._version() == '0.1.0.dev0'


def test_the_repository_scaffold_is_the_packaged_one(tmp_path):
    """``scaffolds/zeostore`` (the design's place) is the template the
    package ships; plain ``cookiecutter`` runs it too, and its hook
    refuses a name that would not import."""
    from cookiecutter.exceptions import FailedHookException
    from cookiecutter.main import cookiecutter

    top = os.path.join(fconf.REPO, 'scaffolds', 'zeostore')
    assert os.path.samefile(top, create.TEMPLATE)
    path = cookiecutter(
        top, no_input=True, output_dir=str(tmp_path), default_config=True,
        extra_context={'backend': 'file'},
    )
    assert path == str(tmp_path / 'my_site')
    assert 'file://' in (tmp_path / 'my_site' / 'development.ini').read_text()
    for context in (
        {'repo_name': 'not-a-package'},
        {'project_name': 'it\'s "quoted"', 'repo_name': 'quoted'},
        {'repo_name': 'os'},
    ):
        with pytest.raises(FailedHookException):
            cookiecutter(
                top, no_input=True, output_dir=str(tmp_path / 'bad'),
                default_config=True, extra_context=context,
            )
        assert not (tmp_path / 'bad').exists() or not os.listdir(
            tmp_path / 'bad'
        )


# -- a new project in a fresh venv (slow) --------------------------------


class Step:
    """Times the steps of one project's life, for the report."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []

    def run(self, what: str, args, timeout: float, **kw) -> str:
        start = time.monotonic()
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, **kw,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            raise AssertionError(
                f'{what}: timed out after {timeout}s:\n'
                + out.decode(errors='replace')[-6000:]
            ) from None
        self.times.append((what, time.monotonic() - start))
        text = out.decode(errors='replace')
        if proc.returncode:
            raise AssertionError(
                f'{what}: exit status {proc.returncode}:\n{text[-6000:]}'
            )
        return text

    def report(self) -> str:
        total = sum(t for _, t in self.times)
        return ', '.join(
            f'{what} {t:.1f}s' for what, t in self.times
        ) + f'; total {total:.1f}s'


def env_for_venv(venv: str, **extra) -> dict:
    """This environment without this checkout's venv and paths."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(('PYTHON', 'VIRTUAL_ENV', 'COVERAGE'))
        # a user's make, not a sub-make of the one running this suite
        # (whose "Entering directory" lines would wrap pytest's summary)
        and k not in ('MAKEFLAGS', 'MAKELEVEL', 'MFLAGS')
    }
    env['PATH'] = os.pathsep.join(
        [os.path.join(venv, 'bin'), env.get('PATH', '/usr/bin:/bin')]
    )
    env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    env.update(extra)
    return env


@pytest.fixture(scope='session')
def wheel(tmp_path_factory) -> str:
    """This checkout built into a wheel, once; from a copy of its sources,
    so that the build writes nothing into the working tree."""
    base = tmp_path_factory.mktemp('wheel')
    src = base / 'src'
    src.mkdir()
    for name in ('pyproject.toml', 'setup.py', 'README.md'):
        shutil.copy(os.path.join(fconf.REPO, name), src)
    shutil.copytree(
        os.path.join(fconf.REPO, 'pyramid_zeostore'),
        src / 'pyramid_zeostore',
        ignore=shutil.ignore_patterns('__pycache__', '*.pyc'),
    )
    out = base / 'dist'
    Step().run(
        'pip wheel',
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--quiet',
         '--wheel-dir', str(out), str(src)],
        PIP_TIMEOUT, cwd=str(base),
    )
    (path,) = out.glob('pyramid_zeostore-*.whl')
    return str(path)


def relstorage_unavailable(reason: str):
    if IN_CI:
        pytest.fail(f'RelStorage cannot be installed in CI: {reason}')
    pytest.skip(f'RelStorage cannot be installed here: {reason}')


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def stop_zeo(project) -> None:
    """Stop the runzeo that development.ini autostarted (its own session,
    so stopping pserve left it running), by its pid file."""
    conf_path = os.path.join(project, 'zeo.conf')
    conf = zeoserver.read_zeo_conf(conf_path)
    pid = zeoserver.server_pid(conf)
    if pid is not None:
        zeoserver.stop_server(conf)
        assert zeoserver.server_pid(conf) is None


@pytest.mark.slow
@pytest.mark.parametrize('backend', BACKENDS)
def test_a_new_project_installs_tests_and_serves(
    backend, wheel, tmp_path, servers
):
    step = Step()
    venv = str(tmp_path / 'venv')
    env = env_for_venv(venv)
    bin_ = os.path.join(venv, 'bin')
    step.run('venv', [sys.executable, '-m', 'venv', venv], 120, env=env)
    step.run(
        'pip install pyramid_zeostore',
        [os.path.join(bin_, 'python'), '-m', 'pip', 'install', '--quiet',
         f'{wheel}[scaffold]'],
        PIP_TIMEOUT, env=env,
    )
    if backend == 'relstorage-sqlite':
        try:
            step.run(
                'pip install RelStorage',
                [os.path.join(bin_, 'python'), '-m', 'pip', 'install',
                 '--quiet', 'RelStorage>=4.0'],
                PIP_TIMEOUT, env=env,
            )
        except AssertionError as e:
            relstorage_unavailable(str(e)[-2000:])
    created = step.run(
        'pzeo create',
        [os.path.join(bin_, 'pzeo'), 'create', 'Demo Site', '--backend',
         backend, '--output-dir', str(tmp_path)],
        120, env=dict(env, HOME=str(tmp_path / 'home')),
    )
    project = str(tmp_path / 'demo_site')
    # pip compiled the installed template: none of that is copied.
    assert not [top for top, _, _ in os.walk(project)
                if top.endswith('__pycache__')]
    # Installed from a wheel file, not an index: the printed next step
    # puts the project into this venv (its own .venv could not install
    # pyramid_zeostore). Run as printed, as a user would.
    assert f'make test VENV={venv} && make serve VENV={venv}' in created
    out = step.run(
        'make test',
        ['make', 'test', f'VENV={venv}', 'PYTEST_ARGS=-p no:cacheprovider'],
        PIP_TIMEOUT + TEST_TIMEOUT, env=env, cwd=project,
    )
    summary = out.strip().splitlines()[-1]
    assert re.search(r'\b\d+ passed\b', summary), out[-3000:]
    assert not re.search(r'failed|error|skipped', summary), out[-3000:]

    # pserve development.ini on a free port; ZEO autostarted for zeo.
    port = fconf.free_port()
    ini = os.path.join(project, 'development.ini')
    with open(ini) as f:
        text = f.read()
    assert 'listen = localhost:6543' in text
    with open(ini, 'w') as f:
        f.write(text.replace('listen = localhost:6543',
                             f'listen = 127.0.0.1:{port}'))

    def pserve():
        return servers(fconf.ServerProcess(
            [os.path.join(bin_, 'pserve'), 'development.ini'], port,
            cwd=project, env=env,
        ), timeout=60)

    try:
        start = time.monotonic()
        server = pserve()
        status, headers, body = server.request('/')
        step.times.append(('pserve + first page',
                           time.monotonic() - start))
        page = body.decode()
        assert status == 200, server.log()
        assert '<h1>Demo Site</h1>' in page
        assert 'Nothing here yet.' in page
        cookie = headers['Set-Cookie'].split(';', 1)[0]
        assert cookie.startswith('csrf_token=')
        form = urllib.parse.urlencode({
            'csrf_token': form_token(page), 'name': 'hello',
            'title': 'Hello', 'kind': 'document',
            'body': 'Written through the form.',
        }).encode()
        status, _, body = server.request(  # 303, followed to the folder
            '/@@add', 'POST', form, {
                'Cookie': cookie,
                'Content-Type': 'application/x-www-form-urlencoded',
            },
        )
        assert status == 200, server.log()
        assert '<a href="http://127.0.0.1' in body.decode()
        assert 'Hello' in body.decode()
        # development.ini's debug toolbar (this host is 127.0.0.1), with
        # the ZODB panel of the folder page, which loaded the document.
        toolbar = re.search(
            r'id="pShowToolBarButton"\s+href="([^"]+)"', body.decode()
        )
        assert toolbar, body.decode()[-2000:]
        path = urllib.parse.urlsplit(toolbar.group(1)).path
        status, _, body = server.request(path)
        assert status == 200, server.log()
        panel = body.decode()
        assert 'id="pDebugPanel-zodb"' in panel
        assert 'demo_site.models.Document' in panel, panel[-3000:]
        server.stop()

        # Committed to the backend: there after a restart.
        server = pserve()
        status, _, body = server.request('/hello')
        assert status == 200, server.log()
        assert 'Written through the form.' in body.decode()
        server.stop()
    finally:
        if backend == 'zeo':
            stop_zeo(project)
    var = os.listdir(os.path.join(project, 'var'))
    expected = {'zeo': 'Data.fs', 'file': 'Data.fs',
                'relstorage-sqlite': 'sqlite'}[backend]
    assert expected in var, var
    print(f'\n{backend}: {summary}; {step.report()}')


# -- pzeo create --ready ------------------------------------------------------


READY_FILES = ('development.ini', 'zeo.conf')


def test_the_ready_folder_is_the_repositorys_setup():
    # One setup, tried by the whole suite: the folder --ready makes has
    # this repository's development.ini and zeo.conf, to the byte.
    for name in READY_FILES:
        with open(os.path.join(fconf.REPO, name), 'rb') as f:
            ours = f.read()
        with open(os.path.join(
            create.READY, '{{cookiecutter.repo_name}}', name
        ), 'rb') as f:
            assert f.read() == ours, f'{name}: copy the repository\'s'


def test_create_ready_serves_the_ready_app(tmp_path, capsys, servers,
                                           autostarted):
    status, out, _ = run_create(capsys, 'My Site', '--ready', '-o',
                                str(tmp_path))
    assert status == 0, out
    folder = tmp_path / 'my_site'
    assert f'created {folder} (the ready app, ZEO)' in out
    assert 'adduser development.ini admin' in out
    assert sorted(p.name for p in folder.iterdir()) == [
        '.gitignore', 'README.md', 'development.ini', 'var', 'zeo.conf',
    ]
    assert '# My Site' in (folder / 'README.md').read_text()
    conf = zeoserver.read_zeo_conf(str(folder / 'zeo.conf'))
    autostarted.append(conf)
    ini = folder / 'development.ini'
    port = fconf.free_port()
    ini.write_text(ini.read_text().replace(
        'listen = 127.0.0.1:6543 [::1]:6543', f'listen = 127.0.0.1:{port}'
    ))
    server = servers(fconf.pserve(str(ini)))  # autostarts its runzeo
    status, _, body = server.request('/?format=json')
    assert status == 200, server.log()
    assert 'read-only' in server.log()  # no user yet
    added = subprocess.run(
        [os.path.join(fconf.BIN, 'pzeo'), 'adduser', 'development.ini',
         'admin'], input='a-long-password\n', capture_output=True,
        text=True, cwd=folder, env=fconf.child_env(), timeout=60,
    )
    assert added.returncode == 0, added.stderr
    headers = dict(fconf.JSON_HEADERS, Authorization=fconf.basic_auth(
        'admin', 'a-long-password'))
    status, _, body = server.request(
        '/', method='POST', data=b'{"name": "first"}', headers=headers,
    )
    assert status == 201, body
    assert (folder / 'var' / 'Data.fs').is_file()


@pytest.mark.parametrize('args, words', [
    (['--ready', '--backend', 'file'], '--ready is the ZEO setup'),
])
def test_create_ready_refusals(tmp_path, capsys, args, words):
    status, _, err = run_create(capsys, 'x', '-o', str(tmp_path), *args)
    assert status == 2 and words in err


@pytest.mark.slow
def test_the_wheel_ships_the_ready_folder(wheel):
    import zipfile

    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    base = 'pyramid_zeostore/scaffold-templates/ready/'
    inner = base + '{{cookiecutter.repo_name}}/'
    for name in ('cookiecutter.json', *(inner + n for n in (
        *READY_FILES, 'README.md', '.gitignore', 'var/.gitkeep',
    ))):
        assert (name if name.startswith(base) else base + name) in names
