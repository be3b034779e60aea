"""Settings fuzz: every key of the README's settings tables and every
``zeo://`` parameter of its parameter table, given wrong types, negatives,
out-of-range numbers, empties and typos, is refused with a
``ConfigurationError`` that names the key: through
``config.include('pyramid_zeostore')`` + ``make_wsgi_app()`` and through
``pyramid.paster.get_app`` on the ready app (``use = egg:pyramid_zeostore``).

The keys are read from README.md when the tests are collected, so a key
added to a table without bad values here fails
:func:`test_every_readme_key_is_fuzzed`. ``DELIBERATE`` holds what is
accepted on purpose (each with its reason, and each checked to be still
accepted); ``ONCE_ACCEPTED`` holds what the first run of this fuzz found
accepted that should not be, each refused now. Nothing here connects: the
base settings are ``memory://`` without the startup check, and a
``zeo://`` URI names a socket in a folder that does not exist (its bad
parameter must be refused before any connection is tried).
"""

from __future__ import annotations

import functools
import logging
import math
import re
from pathlib import Path
from typing import Any

import plaster.loaders
import pytest
import zodburi
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.paster import get_app

from pyramid_zeostore.app.settings import READERS as APP_READERS
from pyramid_zeostore.app.settings import parse_app_settings
from pyramid_zeostore.exceptions import ZeostoreConfigurationError
from pyramid_zeostore.resolvers import REMOVED
from pyramid_zeostore.settings import READERS, known_keys, parse_settings

README = Path(__file__).resolve().parents[2] / 'README.md'
BACKTICKED = re.compile(r'`([^`]+)`')


# -- what the README lists ----------------------------------------------------

def readme_tables(first_header: str) -> list[list[list[str]]]:
    """The README's tables whose first header cell is ``first_header``,
    each as rows of cells (header and ``---`` row left out)."""
    tables, block = [], []
    for line in README.read_text(encoding='utf-8').splitlines() + ['']:
        if line.startswith('|'):
            cells = line.strip().strip('|').split('|')
            block.append([c.strip() for c in cells])
        elif block:
            tables.append(block)
            block = []
    return [t[2:] for t in tables if t[0][0] == first_header]


def readme_keys() -> list[str]:
    """First-column names of the settings tables (the add-on's, the ready
    app's): ``zodb_uri``, ``zodb_uri.NAME``, ``zeostore.*``, ``retry.*``,
    ``tm.*``."""
    keys = [
        name
        for table in readme_tables('key')
        for row in table
        for name in BACKTICKED.findall(row[0])
    ]
    assert 'zodb_uri' in keys and 'zeostore.connect_timeout' in keys, keys
    return keys


def readme_zeo_params() -> list[str]:
    """The ``zeo://`` parameters: each row's first-column names, or for
    the row of zodburi's own, the names in its second column (without the
    settings it mentions); ``connection_*`` is zodburi's list."""
    (table,) = readme_tables('parameter')
    params = []
    for row in table:
        names = BACKTICKED.findall(row[0]) or [
            n for n in BACKTICKED.findall(row[1]) if '.' not in n
        ]
        for name in names:
            if name == 'connection_*':
                params += [
                    f'connection_{p}' for p in zodburi.CONNECTION_PARAMETERS
                ]
            else:
                params.append(name)
    assert 'server_sync' in params and 'wait_timeout' in params, params
    return list(dict.fromkeys(params))


README_KEYS = readme_keys()
ZEO_PARAMS = readme_zeo_params()
#: the ready app's own keys: known only once ``pyramid_zeostore.app`` is in
APP_KEYS = {key for key, _, _ in APP_READERS}
#: README names that stand for a family; the key the tests set
SPELLED = {'zodb_uri.NAME': 'zodb_uri.other'}


# -- bad values ---------------------------------------------------------------

HUGE = '9' * 40
#: numbers of seconds (a float with bounds): key -> (low, high), as the
#: error messages state them
SECONDS = {
    'zeostore.connect_timeout': (0, 300),
    'zeostore.reply_timeout': (0.05, 3600),
    'zeostore.autostart_timeout': (0.1, 600),
    'zeostore.retry_backoff': (0, 10),
    'zeostore.retry_backoff_max': (0, 60),
    'zeostore.slow_request_log': (0, 86400),
    'zeostore.login_window': (0, 86400),
    'zodbconn.transferlog_threshhold': (0, 86400),
}
#: whole numbers: key -> (low, high)
WHOLE = {
    'zeostore.retry_after': (0, 86400),
    'retry.attempts': (1, 100),
    'zeostore.session_timeout': (60, 31 * 86400),
    'zeostore.login_attempts': (1, 1000),
}
#: sizes in bytes: > 0, no upper bound
SIZES = ('zeostore.max_body', 'zeostore.max_value', 'zeostore.large_value')
BOOLS = (
    'zeostore.autostart', 'zeostore.conflict_lock', 'zeostore.fast_reads',
    'zeostore.read_your_writes', 'zeostore.metrics',
    'zeostore.secure_cookies', 'zeostore.autoevolve',
)

NOT_NUMBERS = ['abc', '-1', 'inf', '-inf', 'nan', '1e9', HUGE, '2s', 'true']
NOT_BOOLS = ['maybe', '2', '-1', '', 'tru', 'nan', 'true false']


def _below_above(low: float, high: float, whole: bool) -> list[str]:
    step = 1 if whole else 0.01
    below = [] if low == 0 else [str(round(low - step, 2))]
    return below + [str(round(high + step, 2))]


#: key -> bad values; a value may be ``(value, {other settings})``. In
#: values, ``{tmp}`` is the test's tmp_path, which holds a folder
#: ``dir``, a file ``afile``, ``garbage.conf`` (not a zeo.conf) and
#: ``short-secret`` (too short to be a secret).
BAD: dict[str, list[Any]] = {
    **{key: NOT_NUMBERS + ['1,5'] + _below_above(*bounds, whole=False)
       for key, bounds in SECONDS.items()},
    **{key: NOT_NUMBERS + ['1.5', '1e3', '0x10'] + _below_above(
        *bounds, whole=True) for key, bounds in WHOLE.items()},
    **{key: ['abc', '-1', '0', '1.5mb', '1tb', '1e6', 'mb', '-1mb', '0kb',
             'inf', 'nan'] for key in SIZES},
    **{key: list(NOT_BOOLS) for key in BOOLS},
    'zodb_uri': [
        '', 'abc', 'nosuch://x', 'postgresql://u@h/db', 'memory://?bogus=1',
        'memory://?connection_pool_size=0',
        'memory://?connection_cache_size=-1',
        'memory://?connection_cache_size=abc', 'zeo://', 'zeo://host:99999',
        'zeo://host:abc', 'zeo://host:0',
    ],
    'zodb_uri.NAME': ['', 'abc', 'nosuch://x', 'memory://?bogus=1'],
    'zeostore.appmaker': [
        'no_such_module.appmaker', 'pyramid_zeostore.root.no_such_appmaker',
        'os.path', 'os.sep', '-1', 'pyramid_zeostore.root:',
    ],
    'zeostore.check_on_startup': NOT_BOOLS + ['strictly'],
    'zeostore.zeo_conf': [
        (value, {'zeostore.autostart': 'true'})
        for value in ('', '/nonexistent-zeostore/zeo.conf', '{tmp}/dir')
    ],
    'zeostore.socket_mode': [
        'abc', '-1', '0777', '0604', '0400', '0200', '9', '1e3', '0x180',
        '600.0', '7' * 40,
    ],
    'zeostore.socket_group': [
        'no-such-group-zeostore', '-1', 'abc xyz', '1.5',
    ],
    'zeostore.health_path': [
        'abc', '@@health', '/a b', '-1', 'http://host/x',
    ],
    'zeostore.prometheus_path': [
        'abc', 'metrics', '/a b', '-1', 'http://host/x', '/@@health',
    ],
    'zeostore.lock_file': ['{tmp}/dir', '/nonexistent-zeostore/', 'x/'],
    'zodbconn.transferlog': ['{tmp}/dir', '/nonexistent-zeostore/t.log'],
    'zeostore.anonymous': ['abc', 'all', '-1', 'read,none', 'true', '1'],
    'zeostore.secret': ['short', 'x' * 31, '-1'],
    'zeostore.secret_file': [
        '{tmp}/dir', '{tmp}/short-secret', '{tmp}/afile/secret',
        ('{tmp}/new/secret', {'zeostore.secret': 'x' * 40}),
    ],
    'zeostore.trusted_origins': [
        'abc', '-1', 'ftp://x.example', 'https://x.example/path',
        'https://u@x.example', 'https://x.example:99999',
        'https://x.example?q=1', 'https://',
        'http://a.example https://b.example/x',
    ],
    'zeostore.trusted_hosts': ['a/b', 'host:80', 'a@b', 'a#b', 'a?b'],
}
BAD['zeostore.max_value'].append('2mb')  # over max_body's 1mb
BAD['zeostore.session_timeout'].append('0')
BAD['retry.attempts'].append('0')
BAD['zeostore.login_attempts'].append('0')
#: pyramid_tm's / pyramid_retry's dotted-name keys, imported at include
#: (pyramid_zeostore.settings.DOTTED_KEYS): the README's ``tm.*`` row
DOTTED_BAD = {
    key: ['no_such_module.hook', 'os.path', '-1']
    for key in ('tm.manager_hook', 'tm.commit_veto', 'tm.activate_hook',
                'retry.activate_hook')
}

ZEO_BOOLS = ('read_only', 'read_only_fallback', 'shared_blob_dir',
             'server_sync', 'wait', 'demostorage', 'drop_cache_rather_verify')
ZEO_INTS = ('min_disconnect_poll', 'max_disconnect_poll',
            'blob_cache_size_check')
#: zeo:// parameter -> bad values (without the parameter's typo and its
#: empty value, which every parameter gets)
ZEO_BAD: dict[str, list[str]] = {
    **{p: ['abc', '-1', '1.5', 'maybe'] for p in ZEO_BOOLS},
    **{p: ['abc', '-1', '1.5', 'nan', '1e9'] for p in ZEO_INTS},
    **{p: ['abc', '-1', '1.5mb', '1tb', 'nan', '-1mb', 'mb', '1e9']
       for p in ('cache_size', 'blob_cache_size')},
    'wait_timeout': ['abc', '-1', 'inf', '-inf', 'nan', '1e9', HUGE, '301'],
    **{f'connection_{p}': ['abc', '-1', '1.5', 'nan', '-1mb']
       for p in zodburi.CONNECTION_PARAMETERS},
    'connection_pool_size': ['abc', '-1', '0', '1.5', 'nan', '1e9'],
    'addresses': ['abc', 'host:99999', 'host:abc', 'host', ':', 'host:-1'],
    'ssl_keyfile': ['/nonexistent-zeostore/client.key'],  # no certfile
    **{p: ['1', '0', 'abc'] for p in REMOVED},
}
#: the socket of every zeo:// URI here: its folder does not exist
SOCKET = '/nonexistent-zeostore/zeo.sock'


def typo(name: str) -> str:
    """``name`` with the second letter of its last part dropped
    (``zeostore.cnnect_timeout``), unless that makes another name; then
    the third, and so on."""
    prefix, dot, last = name.rpartition('.')
    taken = known_keys() | APP_KEYS | set(ZEO_PARAMS) | set(ZEO_BAD)
    for i in range(1, len(last)):
        candidate = f'{prefix}{dot}{last[:i]}{last[i + 1:]}'
        if candidate not in taken:
            return candidate
    raise AssertionError(name)  # pragma: no cover


# -- what is accepted: on purpose, or not ------------------------------------

EMPTY_IS_DEFAULT = (
    'an empty value (``key =`` in an ini) means the default, as if the '
    'line were not there; true/false keys, zodb_uri and the URIs of '
    'named databases refuse it'
)
#: (key, value or None for every value, reason): accepted on purpose.
#: Each (key, value) pair is checked to be accepted still.
DELIBERATE: list[tuple[str, str | None, str]] = [
    ('tm.*', None,
     'passed to pyramid_tm, which checks its own keys; the ones naming a '
     'callable are imported at include (DOTTED_BAD)'),
    ('zodb_uri', 'typo',
     'keys without a zeostore./tm./retry. prefix are the application\'s '
     'own: a misspelt zodb_uri is refused only as a missing zodb_uri'),
    ('zodb_uri.NAME', 'typo', 'the same, for zodb_uri.NAME'),
    ('retry.attempts', 'typo',
     'README: unknown tm. and retry. keys belong to pyramid_tm and '
     'pyramid_retry and get a warning naming the closest one'),
    ('zeostore.zeo_conf', '/nonexistent-zeostore/zeo.conf',
     'without zeostore.autostart the app does not read it (pzeo commands '
     'check it when they use it); with autostart it is refused (BAD)'),
    ('zeostore.lock_file', '/nonexistent-zeostore/zeostore.lock',
     'its folder is made at first use'),
    ('zeostore.health_path', '',
     'an empty value turns the health check off, as "off" does'),
    *[(key, HUGE, 'a size has no upper bound: a huge one means no limit')
      for key in SIZES if key != 'zeostore.max_value'],
    ('zeostore.trusted_origins', '',
     'no other origins: the same as the default'),
    *[(key, '', EMPTY_IS_DEFAULT) for key in (
        *SECONDS, *WHOLE, *SIZES, 'zeostore.appmaker', 'zeostore.socket_mode',
        'zeostore.socket_group', 'zeostore.prometheus_path',
        'zeostore.lock_file', 'zeostore.anonymous', 'zeostore.secret',
        'zeostore.secret_file', 'zeostore.trusted_hosts',
    ) if key != 'zeostore.slow_request_log'],
    ('zeostore.slow_request_log', '', 'empty is off, the default'),
    ('zodbconn.transferlog', '',
     'empty: to standard output, as pyramid_zodbconn writes it'),
    ('zeostore.zeo_conf', '', 'unset; refused with autostart (BAD)'),
    *[(f'zodb_uri?{p}', 'anything', 'free text: checked by the ZEO server '
       'when the client connects') for p in (
        'storage', 'name', 'client', 'client_label', 'username', 'password',
        'realm', 'ssl_server_hostname')],
    *[(f'zodb_uri?{p}', '/nonexistent-zeostore/x',
       'a path: checked when the databases are opened (the ready app\'s '
       'startup check: see test_tls_files_are_checked_at_startup)')
      for p in ('var', 'blob_dir', 'ssl_cafile', 'ssl_certfile')],
    ('zodb_uri?database_name', 'other',
     'a DB option of zodburi\'s; the database takes its name from its key'),
]

#: (key, value, other settings, what happens today): accepted, but should
#: be refused naming the key, as this fuzz test found them; refused now.
ONCE_ACCEPTED: list[tuple[str, str, dict, str]] = [
    ('zeostore.zeo_conf', '{tmp}/garbage.conf',
     {'zeostore.autostart': 'true', 'zodb_uri': 'zeo://{tmp}/zeo.sock'},
     'a file that is not a zeo.conf passes parse_settings; the autostart '
     'action then fails with ZConfig.ConfigurationSyntaxError inside '
     "Pyramid's ConfigurationExecutionError, which does not name the key"),
    *[(key, '\u00b2', {},
       "'²'.isdigit() is true but int('²') raises: a bare ValueError from "
       'app/settings.py _bytes, not a ConfigurationError') for key in SIZES],
    ('zeostore.socket_group', '\u00b2', {},
     'the same in settings.py _socket_group: a bare ValueError'),
    ('zeostore.socket_group', HUGE, {},
     'as root (no membership check) any number passes, with no upper '
     'bound: autostart would fail in os.chown; refused for other users'),
    *[(f'zodb_uri?{p}', '2', {},
       'a true/false parameter taking any integer (read as true)')
      for p in ZEO_BOOLS],
    ('zodb_uri?addresses', 'host:0', {},
     'port 0 accepted as a server address (zeo://host:0 is refused)'),
    *[(f'zodb_uri?{p}', '', {},
       'an empty parameter is dropped without a word (parse_qsl): '
       'e.g. ssl_cafile= connects without TLS')
      for p in ZEO_PARAMS],
]


# -- fixtures and helpers -----------------------------------------------------

@pytest.fixture(scope='module', autouse=True)
def _plaster_loaders_found_once():
    """``get_app`` asks plaster for its ini loader every time, which reads
    the metadata of every installed distribution (~40 ms): remember the
    answer for this module. What the loader then does is unchanged."""
    find = plaster.loaders.find_loaders

    @functools.lru_cache(maxsize=None)
    def cached(scheme, protocols):
        return find(scheme, protocols=list(protocols) if protocols else None)

    def find_loaders(scheme, protocols=None):
        return cached(scheme, tuple(protocols or ()))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plaster.loaders, 'find_loaders', find_loaders)
        yield


@pytest.fixture(scope='module')
def tmp(tmp_path_factory) -> Path:
    """A folder with the files ``{tmp}`` values name, and the ini of
    each get_app case (written afresh each time)."""
    tmp_path = tmp_path_factory.mktemp('fuzz')
    (tmp_path / 'dir').mkdir()
    (tmp_path / 'afile').write_text('a file, not a folder\n')
    (tmp_path / 'garbage.conf').write_text('<zeo\nthis is not a zeo.conf\n')
    (tmp_path / 'short-secret').write_text('abc\n')
    return tmp_path


BASE = {'zodb_uri': 'memory://', 'zeostore.check_on_startup': 'false'}


def case_settings(key: str, value: str, extra: dict, tmp: Path) -> dict:
    """The settings of a case: the base, ``extra`` and ``key = value``;
    ``zodb_uri?PARAM`` puts ``PARAM=value`` in a zeo:// zodb_uri."""
    value = value.replace('{tmp}', str(tmp))
    settings = dict(BASE)
    if key == 'zeostore.check_on_startup':
        del settings[key]
    settings.update(
        {k: v.replace('{tmp}', str(tmp)) for k, v in extra.items()}
    )
    if key.startswith('zodb_uri?'):
        settings['zodb_uri'] = f'zeo://{SOCKET}?{key[9:]}={value}'
    else:
        settings[SPELLED.get(key, key)] = value
    return settings


def through_include(settings: dict) -> Any:
    """config.include('pyramid_zeostore') (and the ready app's include if
    a key of its own is set), then make_wsgi_app()."""
    config = Configurator(settings=dict(settings))
    config.include('pyramid_zeostore')
    if APP_KEYS & set(settings):
        config.include('pyramid_zeostore.app')
    return config.make_wsgi_app()


def through_get_app(settings: dict, tmp: Path) -> Any:
    """pyramid.paster.get_app on an ini of the ready app."""
    lines = ['[app:main]', 'use = egg:pyramid_zeostore'] + [
        f'{k} = {v}'.replace('%', '%%') for k, v in settings.items()
    ]
    ini = tmp / 'fuzz.ini'
    ini.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return get_app(str(ini))


PATHS = {'include': lambda s, tmp: through_include(s),
         'get_app': through_get_app}


def error_key(key: str) -> str:
    """The key the error must name."""
    return 'zodb_uri' if key.startswith('zodb_uri?') else SPELLED.get(key, key)


def assert_refused(call, key: str, *, typo: bool = False) -> None:
    """``call()`` raises a ConfigurationError naming ``key`` (raised as it
    is, or in Pyramid's ConfigurationExecutionError for an action)."""
    with pytest.raises(ConfigurationError) as info:
        call()
    error = getattr(info.value, 'evalue', info.value)
    message = str(info.value)
    assert key in message, message
    if isinstance(error, ZeostoreConfigurationError):
        assert error.key == key, message
    if not typo:  # the value was refused, not the key as unknown
        assert 'expected a known setting' not in message, message


def cases() -> list:
    found = []
    for name, values in [*BAD.items(), *DOTTED_BAD.items()]:
        for value in values:
            value, extra = value if isinstance(value, tuple) else (value, {})
            found.append(pytest.param(
                name, value, extra, id=f'{name}={value!r}'
            ))
    for param, values in ZEO_BAD.items():
        for value in values:
            found.append(pytest.param(
                f'zodb_uri?{param}', value, {}, id=f'zeo:{param}={value!r}'
            ))
    return found


def typo_cases() -> list:
    keys = sorted(
        k for k in {*README_KEYS, *known_keys(), *APP_KEYS}
        if k.startswith(('zeostore.', 'zodbconn.transferlog'))
    )
    return [pytest.param(typo(k), id=typo(k)) for k in keys]


def zeo_typo_cases() -> list:
    params = dict.fromkeys([*ZEO_PARAMS, *ZEO_BAD])
    return [pytest.param(typo(p), id=typo(p)) for p in params]


# -- coverage of the README ---------------------------------------------------

def covered_values(key: str) -> set[str]:
    """The values the tests give ``key`` (README spelling), as refused,
    deliberate or once accepted."""
    bad = BAD.get(key, [])
    if key.startswith('zodb_uri?'):
        bad = ZEO_BAD.get(key[9:], [])
    values = {v[0] if isinstance(v, tuple) else v for v in bad}
    values |= {v for k, v, _ in DELIBERATE if k == key and v is not None}
    values |= {v for k, v, _, _ in ONCE_ACCEPTED if k == key}
    return values


def whole_key_deliberate() -> set[str]:
    return {k for k, v, _ in DELIBERATE if v is None}


def test_every_readme_key_is_fuzzed():
    """Each key of the settings tables has wrong values here, its empty
    value and its typo, each refused, deliberate or a known gap."""
    missing = []
    for key in README_KEYS:
        if key in whole_key_deliberate():
            continue
        values = covered_values(key)
        typo_covered = key.startswith(
            ('zeostore.', 'zodbconn.transferlog')) or 'typo' in values
        if not values - {'', 'typo'} or '' not in values or not typo_covered:
            missing.append(key)
    assert not missing, (
        f'README keys without bad values, an empty value or a typo in '
        f'{Path(__file__).name}: {missing}'
    )


def test_every_readme_zeo_parameter_is_fuzzed():
    """Each zeo:// parameter has wrong values here (or is free text in
    DELIBERATE); its empty value and typo are given to every one."""
    missing = [
        p for p in ZEO_PARAMS if not covered_values(f'zodb_uri?{p}') - {''}
    ]
    assert not missing, f'zeo:// parameters without bad values: {missing}'


def test_every_key_the_package_reads_is_in_the_readme():
    """The other way round: a key the package parses is in a table (the
    typo check points at the table)."""
    read = known_keys() | APP_KEYS | {key for key, _, _ in READERS}
    assert not read - set(README_KEYS), (
        f'keys the package reads that README.md does not list: '
        f'{sorted(read - set(README_KEYS))}'
    )


# -- refused ------------------------------------------------------------------

@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('key, value, extra', cases())
def test_a_bad_value_is_refused_naming_its_key(key, value, extra, path, tmp):
    settings = case_settings(key, value, extra, tmp)
    assert_refused(lambda: PATHS[path](settings, tmp), error_key(key))


@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('key', typo_cases())
def test_a_misspelt_key_is_refused_naming_it(key, path, tmp):
    settings = case_settings(key, '1', {}, tmp)
    assert_refused(lambda: PATHS[path](settings, tmp), key, typo=True)


@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('param', zeo_typo_cases())
def test_a_misspelt_zeo_parameter_is_refused(param, path, tmp):
    settings = case_settings(f'zodb_uri?{param}', '1', {}, tmp)
    assert_refused(lambda: PATHS[path](settings, tmp), 'zodb_uri')
    with pytest.raises(ConfigurationError, match=param):
        PATHS[path](settings, tmp)


def test_tls_files_are_checked_at_startup(tmp):
    """ssl_cafile / ssl_certfile are read when the databases open: the
    ready app's startup check refuses a missing one, naming zodb_uri,
    before its client tries to connect."""
    for param in ('ssl_cafile', 'ssl_certfile'):
        settings = case_settings(
            f'zodb_uri?{param}', '/nonexistent-zeostore/x.pem', {}, tmp
        )
        settings['zeostore.check_on_startup'] = 'true'
        assert_refused(
            functools.partial(through_get_app, settings, tmp), 'zodb_uri'
        )


# -- accepted on purpose ------------------------------------------------------

def deliberate_cases() -> list:
    return [
        pytest.param(key, value, id=f'{key}={value!r}')
        for key, value, _ in DELIBERATE
        if value is not None and value != 'typo'
    ]


@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('key, value', deliberate_cases())
def test_deliberate_values_are_still_accepted(key, value, path, tmp):
    """If one of these is refused one day, take it out of DELIBERATE (and
    the README's list of exceptions)."""
    settings = case_settings(key, value, {}, tmp)
    assert callable(PATHS[path](settings, tmp))
    if value == '' and EMPTY_IS_DEFAULT in {
        r for k, v, r in DELIBERATE if k == key and v == ''
    }:
        assert_default(key, settings)


def assert_default(key: str, settings: dict) -> None:
    """An empty ``key`` parses as if it were not set."""
    without = {k: v for k, v in settings.items() if k != key}
    parse = parse_app_settings if key in APP_KEYS else parse_settings
    assert parse(settings) == parse(without), key


@pytest.mark.parametrize('path', PATHS)
def test_a_misspelt_retry_key_gets_a_warning(path, tmp, caplog):
    settings = case_settings(typo('retry.attempts'), '3', {}, tmp)
    with caplog.at_level(logging.WARNING, 'pyramid_zeostore'):
        PATHS[path](settings, tmp)
    assert f'unknown setting {typo("retry.attempts")}' in caplog.text
    assert 'did you mean retry.attempts?' in caplog.text


# -- what this test found accepted once: refused now --------------------------

@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('key, value, extra, today', [
    pytest.param(k, v, e, t, id=f'{k}={v!r}') for k, v, e, t in ONCE_ACCEPTED
])
def test_once_accepted_is_refused_now(key, value, extra, today, path, tmp):
    settings = case_settings(key, value, extra, tmp)
    assert_refused(lambda: PATHS[path](settings, tmp), error_key(key))


# -- junk for the numbers -----------------------------------------------------

#: key -> (field, low, high or None); None is also a value for "off"
NUMBERS = {
    **{key: (low, high) for key, (low, high) in SECONDS.items()},
    **{key: (low, high) for key, (low, high) in WHOLE.items()},
    **{key: (1, None) for key in SIZES},
}
FIELDS = {key: name for key, name, _ in (*READERS, *APP_READERS)}

junk = st.one_of(
    st.text(max_size=12),
    st.text(alphabet='0123456789.-+eE_ xXkKmMgGbB\u00b2\u0663', max_size=10),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10 ** 40), max_value=10 ** 40).map(str),
)


@hsettings(max_examples=200, deadline=None, derandomize=True, database=None,
           suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(NUMBERS)), raw=junk)
def test_junk_for_a_number_never_passes_silently(key, raw):
    """Either a number within the bounds or a ConfigurationError naming
    the key: never a bare exception, never an out-of-range value."""
    parse = parse_app_settings if key in APP_KEYS else parse_settings
    # max_value may not exceed max_body: let a small max_body pass
    others = {'zeostore.max_value': '1'} if key == 'zeostore.max_body' else {}
    try:
        value = getattr(parse({**others, key: raw}), FIELDS[key])
    except ConfigurationError as e:
        assert getattr(e, 'key', None) == key
        assert key in str(e)
        return
    if value is None:  # slow_request_log: off; no transferlog threshold
        assert key in ('zeostore.slow_request_log',
                       'zodbconn.transferlog_threshhold')
        return
    low, high = NUMBERS[key]
    assert math.isfinite(value) and value >= low, (raw, value)
    assert high is None or value <= high, (raw, value)
