"""``pzeo`` in-process: the paths the functional tests cannot reach.

``--version`` of a checkout that is not installed, ``run()`` exiting
with ``main``'s status, the exit status of a statement (``SystemExit``
with a code, a message or none, an exception), the interactive shell's
namespace, a script that exits cleanly, and the zeo.conf errors of
``start`` and ``stop``; on file:// databases, with no process or socket.
``pzeo start`` against a real (absent) socket is in
tests/functional/test_pzeo.py, with the console script's own runs.
"""

from __future__ import annotations

import io
import sys

import pytest

from pyramid_zeostore import cli
from pyramid_zeostore.commands import shell


def test_version_of_a_bare_checkout(monkeypatch, capsys):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(cli, 'version', missing)
    with pytest.raises(SystemExit):
        cli.main(['--version'])
    assert 'not installed' in capsys.readouterr().out


def test_run_exits_with_main(monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['pzeo', 'start', 'x.ini'])
    with pytest.raises(SystemExit) as e:
        cli.run()
    assert e.value.code == 2


@pytest.mark.parametrize(
    'code, expected, err',
    [
        ('raise SystemExit', 0, ''),
        ('raise SystemExit(4)', 4, ''),
        ('raise SystemExit("bye")', 1, 'bye'),
        ('x = 1', 0, ''),
        ('1/0', 1, 'ZeroDivisionError'),
    ],
)
def test_statement_exit_statuses(code, expected, err, capsys):
    assert shell._execute(code, '<t>', {}) == expected
    assert err in capsys.readouterr().err


def write_project(tmp_path, zeo_conf=None):
    ini = tmp_path / 'app.ini'
    lines = [
        '[app:main]',
        'use = egg:pyramid_zeostore',
        f'zodb_uri = file://{tmp_path}/Data.fs',
        'zeostore.check_on_startup = false',
    ]
    if zeo_conf:
        lines.append(f'zeostore.zeo_conf = {zeo_conf}')
    ini.write_text('\n'.join(lines) + '\n')
    return str(ini)


def test_interactive_shell(tmp_path, monkeypatch):
    import code

    ini = write_project(tmp_path)
    seen = {}
    monkeypatch.setattr(sys, 'stdin', io.StringIO())
    monkeypatch.setattr(sys.stdin, 'isatty', lambda: True)
    monkeypatch.setattr(
        code, 'interact', lambda banner, local: seen.update(local)
    )
    assert cli.main(['shell', ini]) == 0
    assert {'root', 'zodb_root', 'conn', 'db', 'tm', 'commit', 'abort',
            'settings'} <= set(seen)


def test_script_that_exits_cleanly(tmp_path):
    ini = write_project(tmp_path)
    script = tmp_path / 's.py'
    script.write_text('import sys\nsys.exit()\n')
    assert cli.main(['run', ini, str(script)]) == 0
    script.write_text('x = len(root)\n')  # runs to its end
    assert cli.main(['run', ini, str(script)]) == 0


def test_zeo_conf_errors(tmp_path, capsys):
    ini = write_project(tmp_path, zeo_conf=tmp_path / 'none.conf')
    assert cli.main(['start', ini]) == 2
    assert 'no such zeo.conf' in capsys.readouterr().err
    conf = tmp_path / 'zeo.conf'
    conf.write_text(
        '<zeo>\n  address localhost\n</zeo>\n'
        '<mappingstorage 1>\n</mappingstorage>\n'
    )
    assert cli.main(['start', ini, '--zeo-conf', str(conf)]) == 2
    assert 'has no port' in capsys.readouterr().err
    ini = write_project(tmp_path)
    assert cli.main(['stop', ini]) == 2
    assert 'set zeostore.zeo_conf' in capsys.readouterr().err




def test_user_commands_name_an_ini_without_a_database(tmp_path, capsys):
    ini = tmp_path / 'app.ini'
    ini.write_text('[app:main]\nuse = egg:pyramid_zeostore\n')
    assert cli.main(['deluser', str(ini), 'someone']) == 2
    err = capsys.readouterr().err
    assert err == (
        'pzeo deluser: the ini configures no database (zodb_uri)\n'
    )


def test_shell_names_an_app_that_cannot_load(tmp_path, capsys):
    ini = tmp_path / 'app.ini'
    ini.write_text('[app:main]\nuse = call:no_such_module_here:main\n')
    assert cli.main(['shell', str(ini), '-c', 'print(1)']) == 2
    out, err = capsys.readouterr()
    assert out == ''
    assert err == (
        f'pzeo shell: cannot load [app:main] of {ini}: ModuleNotFoundError: '
        f"No module named 'no_such_module_here' (pserve {ini} shows the "
        'traceback)\n'
    )


@pytest.mark.parametrize('argv', [
    ['status'], ['users'], ['verify'], ['pack'], ['start'], ['stop'],
    ['adduser', 'someone'], ['deluser', 'someone'], ['evolve'],
    ['backup', '--to', 'backups'],
])
def test_every_command_names_an_app_that_cannot_load(tmp_path, capsys, argv):
    # Reading an ini's settings imports its app (use = call:...): a
    # missing module is one line and status 2, not a traceback.
    ini = tmp_path / 'app.ini'
    ini.write_text('[app:main]\nuse = call:no_such_module_here:main\n')
    command, *rest = argv
    assert cli.main([command, str(ini), *rest]) == 2
    out, err = capsys.readouterr()
    assert out == ''
    assert err.startswith(
        f'pzeo {command}: cannot load [app:main] of {ini}: '
        "ModuleNotFoundError: No module named 'no_such_module_here'"
    ), err
    assert 'Traceback' not in err


def test_a_missing_section_is_named(tmp_path, capsys):
    ini = tmp_path / 'app.ini'
    ini.write_text('[app:main]\nuse = egg:pyramid_zeostore\n')
    assert cli.main(['status', f'{ini}#other']) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'pzeo status: {ini}: '), err
    assert 'other' in err


def test_an_apps_setting_refused_by_an_action_is_said_as_itself(
    tmp_path, capsys
):
    # check_keys is a configuration action: Pyramid wraps what it raises
    # in ConfigurationExecutionError ("... in: Line 0 of file None").
    ini = tmp_path / 'app.ini'
    ini.write_text(
        '[app:main]\nuse = call:tests.functional.classicapp:main\n'
        'zodb_uri = memory://\nzeostore.bogus_key = 1\n'
    )
    assert cli.main(['shell', str(ini), '-c', 'print(1)']) == 2
    out, err = capsys.readouterr()
    assert out == ''
    assert err.startswith(
        'pzeo shell: configuration error: zeostore.bogus_key: expected a '
        'known setting'
    ), err
    assert 'Line 0' not in err and 'class' not in err


def test_unwrap_leaves_other_errors_as_they_are():
    from pyramid.exceptions import ConfigurationExecutionError

    from pyramid_zeostore.commands import unwrap

    wrapped = ConfigurationExecutionError(
        ValueError, ValueError('not a setting'), 'info'
    )
    assert unwrap(wrapped) is wrapped
    plain = ValueError('x')
    assert unwrap(plain) is plain
