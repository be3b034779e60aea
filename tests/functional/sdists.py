"""Source distributions of other projects, downloaded once and cached.

Some functional tests run what another project publishes (the Pyramid
wiki tutorial, pyramid_zodbconn's own tests) against this package. The
sdist is fetched from the package index by pip into a cache folder
(``ZEOSTORE_TEST_CACHE``, default ``~/.cache/pyramid_zeostore-tests``)
and unpacked there; nothing of it is kept in this repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

CACHE = Path(os.environ.get(
    'ZEOSTORE_TEST_CACHE',
    Path.home() / '.cache' / 'pyramid_zeostore-tests',
))


def unpacked(project: str, version: str, folder: str = '') -> Path:
    """``folder`` (a path inside the sdist) of ``project==version``,
    downloaded and unpacked on first use."""
    top = f'{project.replace("-", "_")}-{version}'
    found = [p for p in CACHE.glob('*') if p.name.lower() == top.lower()]
    target = (found[0] if found else CACHE / top) / folder
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    archives = [p for p in CACHE.glob('*.tar.gz')
                if p.name.lower() == f'{top.lower()}.tar.gz']
    if not archives:
        subprocess.run(
            [sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps',
             '--no-binary', ':all:', f'{project}=={version}',
             '-d', str(CACHE)],
            check=True, timeout=300,
        )
        archives = [p for p in CACHE.glob('*.tar.gz')
                    if p.name.lower() == f'{top.lower()}.tar.gz']
    with tarfile.open(archives[0]) as tar:
        root = tar.getmembers()[0].name.split('/')[0]
        prefix = f'{root}/{folder}'.rstrip('/')
        members = [m for m in tar.getmembers()
                   if m.name == prefix or m.name.startswith(prefix + '/')]
        tar.extractall(CACHE, members=members, filter='data')
    return CACHE / root / folder
