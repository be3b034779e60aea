"""The ZODB panel in a real browser: a write that conflicts once, then the
toolbar opened from its page and the panel's tab clicked.

:mod:`tests.functional.toolbarapp` under ``pserve`` on 127.0.0.1 over a
``runzeo`` server (the ready app's CSP forbids the toolbar's scripts).
``browser.shot('debugtoolbar')`` is the README's screenshot
(``ZEOSTORE_SCREENSHOTS=docs/screenshots``).
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pyramid_zeostore.testing import running_zeo_server
from tests.browser.conftest import WINDOW
from tests.functional.conftest import free_port, pserve

WAIT = 20.0


@pytest.fixture(scope='module')
def toolbar_site(tmp_path_factory):
    """The toolbar app under pserve: its ServerProcess."""
    with running_zeo_server(tmp_path_factory.mktemp('zeo')) as zeo:
        ini = tmp_path_factory.mktemp('app') / 'toolbar.ini'
        ini.write_text('\n'.join([
            '[app:main]',
            'use = call:tests.functional.toolbarapp:main',
            f'zodb_uri = {zeo.uri()}',
            'debugtoolbar.hosts = 127.0.0.1',
            '',
            '[server:main]',
            'use = egg:waitress#main',
            f'listen = 127.0.0.1:{free_port()}',
            '',
        ]))
        server = pserve(str(ini))
        try:
            server.start(60)
            yield server
        finally:
            server.stop()


def test_the_toolbar_shows_the_zodb_panel(toolbar_site, browser):
    wait = WebDriverWait(browser, WAIT)
    browser.get(toolbar_site.url + '/a/@@edit')
    browser.find_element(By.ID, 'bump').click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, 'p'),
                                                'a: 101'))
    # The toolbar's button opens it in a window of its own.
    wait.until(ec.element_to_be_clickable(
        (By.ID, 'pShowToolBarButton'))).click()
    wait.until(ec.number_of_windows_to_be(2))
    browser.switch_to.window(browser.window_handles[-1])
    browser.set_window_size(*WINDOW)
    wait.until(ec.element_to_be_clickable(
        (By.CSS_SELECTOR, '#pDebugPanel-zodb a'))).click()
    content = wait.until(ec.visibility_of_element_located(
        (By.ID, 'pDebugPanel-zodb-content')))
    text = content.text
    assert '2 attempt(s), 1 conflict(s), 1 retry(ies); attempt 1 won' in text
    assert 'ConflictError: database conflict error' in text
    assert 'tests.functional.toolbarapp.Item' in text
    assert 'bump a' in text and 'tester' in text
    assert 'the answer sets zeostore_sync' in text
    badge = browser.find_element(By.CSS_SELECTOR, '#pDebugPanel-zodb .badge')
    assert badge.text == '3/1'
    browser.shot('debugtoolbar')
