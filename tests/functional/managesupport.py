"""What the object browser's functional tests share: the ready app with a
manager, a logged-in WebTest client, the app root on a connection of the
test's own, the last transaction."""

from __future__ import annotations

import transaction
from webtest import TestApp

from pyramid_zeostore import get_databases, main
from pyramid_zeostore.app.users import add_user

SECRET = 'x' * 40
ORIGIN = {'Origin': 'http://localhost'}
BOSS = ('boss', 'pw-boss-1')


def make_router(uri: str, users=(BOSS + ('manager',),), **settings):
    """The ready app on ``uri`` with ``users`` (name, password, role)."""
    router = main({}, zodb_uri=uri, **{'zeostore.secret': SECRET},
                  **settings)
    db = get_databases(router.registry).get('')
    for name, password, role in users:
        add_user(db, name, password, role)
    return router


def login(router, name: str, password: str) -> TestApp:
    """A client logged in through the form (a session cookie)."""
    app = TestApp(router, extra_environ={'HTTP_HOST': 'localhost'})
    form = app.get('/@@login').forms[0]
    form['name'], form['password'] = name, password
    assert form.submit(headers=ORIGIN).status_int == 303
    return app


def app_root(router):
    """(connection, manager, app root) on a connection of the test's own."""
    db = get_databases(router.registry).get('')
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    return conn, tm, conn.root()['app_root']


def last_transaction(router) -> dict:
    db = get_databases(router.registry).get('')
    return db.undoLog(0, 1)[0]
