"""The WSGI entry point for mod_wsgi (WSGIScriptAlias / .../app.wsgi).

Loads the ini named by the environment variable PYRAMID_ZEOSTORE_INI, or
else ``production.ini`` beside this file; sets up the logging its
[loggers] sections describe (to stderr, i.e. Apache's error log), and
exposes the app as ``application``.

Each mod_wsgi daemon process runs this once and is a ZEO client of its
own: pyramid_zeostore opens the databases lazily in each process, so
nothing is shared across processes.
"""

import os

from pyramid.paster import get_app, setup_logging

ini_path = os.environ.get('PYRAMID_ZEOSTORE_INI') or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'production.ini'
)
setup_logging(ini_path)
application = get_app(ini_path, 'main')
