"""Leave out what an installed template carries beside its own files
(run by cookiecutter in the new project): the ``__pycache__`` folders
that pip compiled into the template when it installed the package."""

import os
import shutil

for top, dirs, _ in os.walk('.'):
    for name in [d for d in dirs if d == '__pycache__']:
        shutil.rmtree(os.path.join(top, name))
        dirs.remove(name)
