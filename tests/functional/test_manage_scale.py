"""The object browser's contents page of a folder of 1,000,000 children.

The database is built straight on a FileStorage (in bulk on the folder's
BTree, a commit and ``cacheMinimize`` every :data:`BATCH` children, so
memory stays bounded), then served by a real ``runzeo`` to the ready
app. The first and the next page (``?after=``) of the folder's
``@@manage`` must list 50 children and load only a bounded number of
records over the request's connection (``getTransferCounts``, read by
connection-event subscribers the test registers): the page walks the
BTree down to the page, never the other children. How long a page takes
to render at 1,000 and at 1,000,000 children is printed, not asserted.
"""

from __future__ import annotations

import os
import re
import time

import pytest
import transaction
from webtest import TestApp
from ZODB import DB
from ZODB.FileStorage import FileStorage

from pyramid_zeostore import Folder, get_databases, main
from pyramid_zeostore.app.content import Item
from pyramid_zeostore.app.users import add_user
from pyramid_zeostore.events import (
    ZODBConnectionOpened,
    ZODBConnectionWillClose,
)
from pyramid_zeostore.interfaces import IConnectionListeners
from pyramid_zeostore.testing import ZEOProcess

SECRET = 'x' * 40
ORIGIN = {'Origin': 'http://localhost'}
BIG = 1_000_000
SMALL = 1_000
BATCH = 50_000
#: records a page may load: its 50 children, the path down the BTree
#: and the folder; nowhere near the 1,000,000 children (or their
#: ~70,000 buckets)
MAX_LOADS = 500


def fill(tm, conn, folder, count):
    """Add ``count`` items to ``folder`` in bulk, committing every BATCH.

    What ``Folder.add(name, item, send_events=False)`` does, less its
    per-name checks (a third of the time): the children go into the
    folder's BTree (``_data``) by ``update`` and their number into its
    ``_num_objects``; :func:`build` checks the result through the
    public API.
    """
    for start in range(0, count, BATCH):
        batch = []
        for i in range(start, min(count, start + BATCH)):
            item = Item()
            item.__parent__, item.__name__ = folder, f'n{i:07d}'
            batch.append((item.__name__, item))
        folder._data.update(batch)
        folder._num_objects.change(len(batch))
        tm.commit()
        conn.cacheMinimize()


def build(directory):
    """A Data.fs whose app root holds ``small`` (1,000 children) and
    ``big`` (1,000,000)."""
    os.makedirs(directory, exist_ok=True)
    db = DB(FileStorage(os.path.join(directory, 'Data.fs')))
    try:
        tm = transaction.TransactionManager()
        conn = db.open(transaction_manager=tm)
        root = conn.root()['app_root'] = Folder()
        root.add('small', Folder(), send_events=False)
        root.add('big', Folder(), send_events=False)
        tm.commit()
        fill(tm, conn, root['small'], SMALL)
        fill(tm, conn, root['big'], BIG)
        big = root['big']
        last = f'n{BIG - 1:07d}'
        assert len(big) == BIG and big[last].__parent__ is big
        assert big.page(0, 1, after=f'n{BIG - 2:07d}') == [(last, big[last])]
        tm.abort()
        conn.close()
    finally:
        db.close()  # writes Data.fs.index: runzeo starts at once


@pytest.fixture
def loads():
    """Records loaded by each request that used the database, in order."""
    return []


@pytest.fixture
def router(tmp_path, loads, capsys):
    directory = tmp_path / 'zeo'
    started = time.perf_counter()
    build(directory)
    with capsys.disabled():
        print(f'\nbuilt {BIG:,} + {SMALL:,} children in '
              f'{time.perf_counter() - started:.1f} s')
    server = ZEOProcess(directory)
    server.start()
    try:
        router = main({}, zodb_uri=server.uri(),
                      **{'zeostore.secret': SECRET})

        def opened(event):
            for conn in event.conn.connections.values():
                conn.getTransferCounts(clear=True)

        def will_close(event):
            loads.append(sum(
                conn.getTransferCounts(clear=True)[0]
                for conn in event.conn.connections.values()))

        registry = router.registry
        registry.registerHandler(opened, (ZODBConnectionOpened,))
        registry.registerHandler(will_close, (ZODBConnectionWillClose,))
        # the app looked its connection listeners up when it was made
        registry.getUtility(IConnectionListeners).find()
        add_user(get_databases(registry).get(''), 'boss', 'pw-boss-1',
                 'manager')
        yield router
        get_databases(registry).close()
    finally:
        server.stop()


def timed_page(app, url, loads):
    """The page, its render time and the records its request loaded."""
    del loads[:]
    started = time.perf_counter()
    page = app.get(url)
    elapsed = time.perf_counter() - started
    assert len(loads) == 1, loads
    return page, elapsed, loads[0]


NAME = re.compile(r'name="name" value="(n\d{7})"')


@pytest.mark.slow
def test_a_page_of_a_million_children_loads_a_page(router, loads, capsys):
    boss = TestApp(router, extra_environ={'HTTP_HOST': 'localhost'})
    form = boss.get('/@@login').forms[0]
    form['name'], form['password'] = 'boss', 'pw-boss-1'
    form.submit(headers=ORIGIN, status=303)
    boss.get('/@@manage')  # the template compiled before timing it
    report = []
    for folder, count in (('small', SMALL), ('big', BIG)):
        page, first, first_loads = timed_page(
            boss, f'/{folder}/@@manage', loads)
        assert f'({count:,}'.replace(',', '') in page.text
        names = NAME.findall(page.text)
        assert names == [f'n{i:07d}' for i in range(50)]
        following, then, then_loads = timed_page(
            boss, page.html.find('a', rel='next')['href'], loads)
        assert NAME.findall(following.text) == [
            f'n{i:07d}' for i in range(50, 100)]
        assert first_loads < MAX_LOADS and then_loads < MAX_LOADS, (
            first_loads, then_loads)
        report.append(
            f'{count:>9,} children: first page {first * 1000:6.1f} ms '
            f'({first_loads} loads), next page {then * 1000:6.1f} ms '
            f'({then_loads} loads)')
    with capsys.disabled():
        print('\n' + '\n'.join(report))
