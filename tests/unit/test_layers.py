"""The package's modules import only downward, at module level, in no
circle (the layers of the design: leaf, settings, storage, request,
tweens, faces).

Reads every module's source with ``ast``: imports anywhere in a file
count, those inside functions and ``if TYPE_CHECKING`` blocks too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pyramid_zeostore

PACKAGE = Path(pyramid_zeostore.__file__).parent
NAME = 'pyramid_zeostore'

#: Each module's floor; a module may import its own floor and below.
FLOORS = {
    'leaf': (
        'environ', 'interfaces', 'exceptions', 'events', 'folder',
        'compat', 'display', 'backoff', 'progress',
    ),
    'settings': ('settings', 'resolvers'),
    'storage': ('databases', 'zeoserver', 'probe'),
    'request': ('connection', 'root', 'request', 'contention', 'metrics',
                'evolve'),
    'tweens': ('tweens',),
    'faces': (
        'health', 'errorviews', 'app', 'app.*', 'manage', 'manage.*', 'cli',
        'debugtoolbar', 'debugtoolbar.*',
        'commands', 'commands.*', 'pshell', 'scripting', 'testing', '',
    ),
}
ORDER = list(FLOORS)


def modules() -> dict[str, Path]:
    """Dotted name (without the package) -> file, for every module."""
    found = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == 'scaffold-templates':
            continue  # templates of generated projects
        parts = list(rel.with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        found['.'.join(parts)] = path
    return found


MODULES = modules()


def floor(module: str) -> str:
    for name, members in FLOORS.items():
        for member in members:
            if module == member or (
                member.endswith('.*')
                and module.startswith(member[:-1])
            ):
                return name
    raise AssertionError(f'{module!r} has no floor: add it to FLOORS')


def imports(
    module: str, path: Path | None = None
) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) of ``module``'s imports
    of the package's own modules (its source: ``path``, else its file)."""
    path = path or MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    inner = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner.update(id(n) for n in ast.walk(node) if n is not node)
    base = module.split('.') if module else []
    if path.name != '__init__.py':
        base = base[:-1]
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = base[: len(base) - (node.level - 1)]
                target = up + (node.module.split('.') if node.module else [])
            elif node.module.split('.')[0] == NAME:
                target = node.module.split('.')[1:]
            else:
                continue
            for alias in node.names:
                full = '.'.join(target + [alias.name])
                targets.append(full if full in MODULES else '.'.join(target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split('.')
                if parts[0] == NAME:
                    targets.append('.'.join(parts[1:]))
        for target in targets:
            if target != module:
                found.append((target, node.lineno, id(node) in inner))
    return found


GRAPH = {m: {t for t, _, _ in imports(m)} for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_modules_import_each_other_in_no_circle():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [
        ['a', 'b', 'c']
    ]


@pytest.mark.parametrize('module', sorted(MODULES))
def test_a_module_imports_only_its_floor_and_below(module):
    mine = ORDER.index(floor(module))
    upward = [
        f'{target or NAME} ({floor(target)}) at line {line}'
        for target, line, _ in imports(module)
        if ORDER.index(floor(target)) > mine
    ]
    assert upward == [], f'{module or NAME} ({floor(module)}) imports upward'


@pytest.mark.parametrize('module', sorted(MODULES))
def test_every_import_of_the_package_is_at_module_level(module):
    deferred = [
        f'{target or NAME} at line {line}'
        for target, line, inner in imports(module)
        if inner
    ]
    assert deferred == []


def test_nothing_imports_the_package_itself():
    """``__init__`` imports every layer: importing it back is a circle."""
    assert [m for m, targets in GRAPH.items() if '' in targets and m] == []


def test_the_folder_knows_only_the_leaf():
    assert {floor(t) for t in GRAPH['folder']} <= {'leaf'}


def test_the_reader_sees_relative_absolute_and_deferred_imports(tmp_path):
    assert {'connection', 'contention', 'environ'} <= GRAPH['tweens']
    assert 'commands' in GRAPH['commands.pack']  # from . import ...
    assert '' in GRAPH['app'] or 'root' in GRAPH['app']  # from ..root
    source = (
        'from pyramid_zeostore import tweens\n'
        'def f():\n'
        '    from .. import connection\n'
    )
    path = tmp_path / 'probe.py'
    path.write_text(source)
    found = imports('commands.probe', path)
    assert ('tweens', 1, False) in found
    assert ('connection', 3, True) in found
