"""Refuse names that would not make a working project (run by
cookiecutter before it writes anything)."""

import keyword
import sys

project_name = {{ cookiecutter.project_name | tojson }}
repo_name = {{ cookiecutter.repo_name | tojson }}

problems = []
if not project_name.strip() or any(c in project_name for c in '"\\\n'):
    problems.append(
        f'project_name {project_name!r}: give a name without quotes, '
        'backslashes or line breaks'
    )
if (
    not repo_name.isidentifier()
    or keyword.iskeyword(repo_name)
    or not repo_name.isascii()
    or repo_name != repo_name.lower()
):
    problems.append(
        f'repo_name {repo_name!r}: the package name must be a lower-case '
        'Python identifier (letters, digits, underscores)'
    )
elif repo_name in sys.stdlib_module_names or repo_name in (
    'pyramid', 'pyramid_zeostore', 'tests', 'test', 'transaction', 'ZODB',
    'ZEO', 'persistent', 'waitress',
):
    problems.append(
        f'repo_name {repo_name!r} is the name of an existing module: '
        'choose another'
    )
for problem in problems:
    print(f'ERROR: {problem}', file=sys.stderr)
sys.exit(1 if problems else 0)
