"""Fixtures of the browser suite: the ready app served by pserve on a real
ZEO server, and headless Chromium driven by Selenium.

``zeo`` and ``site`` live for a test module (the object browser's tests
are one flow whose steps follow each other): a ``runzeo`` server, then
``pserve`` of an ini for the ready app on a free loopback port, whose
database has a manager and an editor before it starts. ``browser`` is a
new Chromium for each test (its own profile: no cookie carried over),
with ``browser.shot(name)``: a PNG of the whole page in
``<tmp_path>/screens``, and once per run in the folder named by
``ZEOSTORE_SCREENSHOTS`` (e.g. ``docs/screenshots``) when it is set.
Chromium runs headless with no network, GPU or sandbox; every process
started here is stopped at the end, even when a test fails (which also
leaves a ``failed-*.png`` of the page it was on).

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/install-browser``
installs them); without them the tests are skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from types import SimpleNamespace

import pytest

from pyramid_zeostore import Databases
from pyramid_zeostore.app.users import add_user
from pyramid_zeostore.testing import running_zeo_server
from tests.functional.conftest import free_port, pserve, write_ini

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
#: no network, no GPU, no sandbox (containers), a profile of its own
CHROMIUM_FLAGS = (
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--window-size=1280,900',
    '--hide-scrollbars',  # screenshots the window's full width
)
WINDOW = (1280, 900)
SECRET = 'browser-tests-session-secret-0123456789abcdef'
MANAGER = ('boss', 'pw-boss-browser-1')
EDITOR = ('ed', 'pw-ed-browser-12')
SCREENSHOTS_ENV = 'ZEOSTORE_SCREENSHOTS'
#: screenshot names already written to $ZEOSTORE_SCREENSHOTS this run
_published: set[str] = set()


def pytest_configure(config) -> None:
    config.addinivalue_line(
        'markers',
        'browser: Selenium tests in headless Chromium (tests/browser; '
        '.ci/install-browser installs Chromium)',
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item: ``browser`` screenshots the
    page a failed test was on."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f'report_{report.when}', report)


@pytest.fixture(scope='module', autouse=True)
def chromium_installed():
    """Skip (before any server starts) where Chromium is missing."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER,
                                                       os.X_OK)):
        pytest.skip(f'needs {CHROMIUM} and {CHROMEDRIVER} (Debian\'s '
                    'chromium and chromium-driver: .ci/install-browser)')


@pytest.fixture(scope='module')
def zeo(tmp_path_factory):
    """A ``runzeo`` server for the module's tests."""
    with running_zeo_server(tmp_path_factory.mktemp('zeo')) as server:
        yield server


@pytest.fixture(scope='module')
def site(zeo, tmp_path_factory):
    """The ready app under ``pserve`` on 127.0.0.1, with the users
    ``MANAGER`` (role manager) and ``EDITOR`` (role editor): ``url``,
    ``manager``, ``editor`` (name, password) and ``server``
    (:class:`tests.functional.conftest.ServerProcess`, for its log)."""
    databases = Databases.from_uri(zeo.uri(), 10.0)
    try:
        db = databases.get('')
        add_user(db, *MANAGER, 'manager')
        add_user(db, *EDITOR, 'editor')
    finally:
        databases.close()
    ini = write_ini(
        tmp_path_factory.mktemp('app'), zeo.uri(), free_port(),
        **{'zeostore.secret': SECRET},
    )
    server = pserve(ini)
    try:
        server.start(60)
        yield SimpleNamespace(
            url=server.url, manager=MANAGER, editor=EDITOR, server=server,
        )
    finally:
        server.stop()


def full_page_png(driver) -> bytes:
    """The window as PNG bytes (1280x900: the pages fit). Not a CDP
    capture beyond the viewport: after one, chromedriver's next click
    could fail now and then ("Node with given id does not belong to the
    document")."""
    return driver.get_screenshot_as_png()


def start_chrome(webdriver, service, options, attempts: int = 3):
    """``webdriver.Chrome``, tried again (bounded) when the browser fails
    to start: on a loaded 2-core machine its first start can time out."""
    from selenium.common.exceptions import WebDriverException

    for attempt in range(1, attempts + 1):
        try:
            return webdriver.Chrome(service=service, options=options)
        except WebDriverException:
            if attempt == attempts:
                raise
            time.sleep(1)


@pytest.fixture
def browser(request, tmp_path):
    """Headless Chromium (Selenium's ``webdriver.Chrome``), 1280x900, a new
    profile; ``browser.shot(name)`` saves the page as
    ``<tmp_path>/screens/<name>.png`` (and returns that path)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    screens = tmp_path / 'screens'
    screens.mkdir()
    published = os.environ.get(SCREENSHOTS_ENV)
    profile = tempfile.mkdtemp(prefix='zeostore-chromium-')
    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f'--user-data-dir={profile}')
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / 'driver.log'))
    driver = None
    try:
        driver = start_chrome(webdriver, service, options)
        driver.set_window_size(*WINDOW)
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(10)
        driver.implicitly_wait(0)  # every wait is an explicit, bounded one

        def shot(name: str, publish: bool = True):
            png = full_page_png(driver)
            path = screens / f'{name}.png'
            path.write_bytes(png)
            if publish and published and name not in _published:
                os.makedirs(published, exist_ok=True)
                with open(os.path.join(published, f'{name}.png'), 'wb') as f:
                    f.write(png)
                _published.add(name)
            return path

        driver.shot = shot
        yield driver
        report = getattr(request.node, 'report_call', None)
        if report is not None and report.failed:
            try:
                shot(f'failed-{request.node.name}', publish=False)
                (screens / f'failed-{request.node.name}.html').write_text(
                    driver.page_source)
            except Exception as e:  # noqa: BLE001 - best effort
                print(f'no screenshot of the failure: {e}')
            print(f'browser at {driver.current_url}; screens in {screens}')
            if 'site' in request.fixturenames:
                server = request.getfixturevalue('site').server
                print(f'the server\'s output:\n{server.log(3000)}')
    finally:
        try:
            if driver is not None:
                driver.quit()
        finally:
            service.stop()  # a no-op once quit() stopped chromedriver
            shutil.rmtree(profile, ignore_errors=True)
