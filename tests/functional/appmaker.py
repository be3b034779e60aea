"""The test ini's appmaker: the default root, plus the test user.

Every app :func:`tests.functional.conftest.write_ini` writes uses it, so
that the servers the functional tests start have a user whose HTTP Basic
credentials (``conftest.JSON_HEADERS``) may write, however and whenever
their database was made. Only the bootstrap adds it; later calls read.
"""

from __future__ import annotations

from pyramid_zeostore.app.users import find_users, users_for_change
from pyramid_zeostore.root import default_appmaker

USER = 'functional'
PASSWORD = 'functional-test-pw'
#: signs the sessions of the test apps (the ready app wants one once
#: users exist)
SECRET = 'functional-tests-session-secret-0123456789'


def with_user(zodb_root):
    users = find_users(zodb_root)
    if users is None or users.get(USER) is None:
        users_for_change(zodb_root).add(USER, PASSWORD, 'editor')
    return default_appmaker(zodb_root)
