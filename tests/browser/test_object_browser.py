"""The object browser (``@@manage``) used as a person would, in Chromium.

One flow over the ready app served by ``pserve`` on a real ZEO server
(``conftest.py``), using only what the pages show: fields found by their
``<label>``, buttons by their text, links by theirs.

``test_object_browser_flow``: refused without logging in (and to an
editor), log in, add a folder with the keyboard alone, add an item with
attributes, its page, an edit refused for its type (the same page, the
error next to the field) then a good one, a rename, a delete after the
confirmation page, log out and refused again. Then, on what that flow
left, the pages written alongside this suite (against the interface
agreed for them): ``test_undo_the_delete`` (the Transactions page's
Undo brings the deleted item back) and ``test_move_by_cut_and_paste``
(the contents page's Cut, a new folder's Paste, then a delete of the
moved item). The tests run in this order and share the module's
database; each has a browser (a session) of its own.

Every page is checked for what an accessibility audit looks at first
(:func:`assert_accessible`); screenshots of each kind of page go to the
test's ``screens`` folder (and ``$ZEOSTORE_SCREENSHOTS``).
"""

from __future__ import annotations

import json

import pytest
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser

#: seconds any one wait for the page may take
WAIT = 10
#: TAB presses allowed to reach a control from the top of a page
MAX_TABS = 60


# -- reading and driving pages -------------------------------------------


def wait(driver, timeout: float = WAIT) -> WebDriverWait:
    return WebDriverWait(driver, timeout)


def go(driver, site, path: str) -> None:
    """Open ``path`` of the site (a loopback URL) and wait for it."""
    driver.get(site.url + path)
    wait(driver).until(
        lambda d: d.execute_script('return document.readyState')
        == 'complete')


def status(driver) -> int | None:
    """The HTTP status of the page shown (the last response of its
    navigation: a redirect's target, not the redirect)."""
    return driver.execute_script(
        "const e = performance.getEntriesByType('navigation')[0];"
        "return e ? e.responseStatus : null;")


def gone(element):
    """A wait condition: ``element`` left the document (its page was
    replaced). Selenium's ``staleness_of``, but Chrome now and then says
    so with "Node with given id does not belong to the document" rather
    than a stale element reference, which the wait does not expect."""

    def check(driver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if 'does not belong to the document' in str(e):
                return True
            raise
        return False

    return check


def send(driver, action) -> None:
    """Do ``action()`` (a click, ENTER), which loads another page, and
    wait until that page has replaced this one."""
    old = driver.find_element(By.TAG_NAME, 'html')
    action()
    wait(driver).until(gone(old))
    wait(driver).until(
        lambda d: d.execute_script('return document.readyState')
        == 'complete')


def xpath_text(text: str) -> str:
    """``text`` as an XPath string literal."""
    if "'" not in text:
        return f"'{text}'"
    return 'concat(' + ', "\'", '.join(
        f"'{part}'" for part in text.split("'")) + ')'


def form(driver, form_id: str):
    try:
        return driver.find_element(By.ID, form_id)
    except NoSuchElementException:
        raise AssertionError(
            f'no form #{form_id} on {driver.current_url}') from None


def field(driver, label: str, scope=None):
    """The control whose ``<label>`` says ``label`` (within ``scope``)."""
    scope = scope or driver
    labels = scope.find_elements(
        By.XPATH, f'.//label[normalize-space()={xpath_text(label)}]')
    assert len(labels) == 1, (
        f'{len(labels)} labels {label!r} on {driver.current_url}')
    return driver.find_element(By.ID, labels[0].get_attribute('for'))


def button(driver, text: str, scope=None):
    """The button that says ``text`` (within ``scope``)."""
    scope = scope or driver
    found = scope.find_elements(
        By.XPATH, f'.//button[normalize-space()={xpath_text(text)}]')
    assert found, f'no button {text!r} on {driver.current_url}'
    return found[0]


def link(driver, text: str):
    found = driver.find_elements(
        By.XPATH, f'//a[normalize-space()={xpath_text(text)}]')
    assert found, f'no link {text!r} on {driver.current_url}'
    return found[0]


def fill(element, text: str) -> None:
    element.clear()
    element.send_keys(text)


def heading(driver) -> str:
    return driver.find_element(By.TAG_NAME, 'h1').text


def body_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, 'body').text


def children(driver) -> list[str]:
    """The names the contents page lists (its table's Name column)."""
    names = []
    for row in driver.find_elements(By.CSS_SELECTOR,
                                    '#pick-form tbody tr'):
        cells = row.find_elements(By.TAG_NAME, 'td')
        if len(cells) > 1:
            names.append(cells[1].text.strip().rstrip('/'))
    return names


def attributes(driver) -> dict[str, tuple[str, str]]:
    """The object page's attributes: name -> (type, value as shown)."""
    rows = driver.find_elements(
        By.XPATH,
        "//h2[normalize-space()='Attributes']/following::table[1]/tbody/tr")
    found = {}
    for row in rows:
        cells = row.find_elements(By.TAG_NAME, 'td')
        if len(cells) == 3:
            found[cells[0].text] = (cells[1].text, cells[2].text)
    return found


def select_child(driver, name: str) -> None:
    """Tick the contents page's checkbox of ``name`` (its label says
    'Select NAME')."""
    driver.find_element(
        By.CSS_SELECTOR, f'input[type=checkbox][aria-label="Select {name}"]'
    ).click()


def log_in(driver, site, name: str, password: str) -> None:
    """Through the login form; lands on the page it came from."""
    go(driver, site, '/@@login')
    fill(field(driver, 'Name'), name)
    fill(field(driver, 'Password'), password)
    send(driver, button(driver, 'Log in').click)
    assert 'Wrong name or password' not in body_text(driver)


def log_out(driver) -> None:
    """The header's 'Log out' button (every page of the browser has it)."""
    send(driver, button(driver, 'Log out').click)


def add_child(driver, name: str, kind: str, attrs: dict | None = None):
    """Fill and send the contents page's add form."""
    add = form(driver, 'add-form')
    fill(field(driver, 'Name', add), name)
    Select(field(driver, 'Kind', add)).select_by_visible_text(kind)
    fill(field(driver, 'Attributes (a JSON object, optional)', add),
         json.dumps(attrs) if attrs else '')
    send(driver, button(driver, 'Add', add).click)
    assert status(driver) == 200, body_text(driver)


def assert_refused(driver, site, says: str = '/@@login') -> None:
    """``/@@manage`` answers 403 saying why (by default: where to log
    in), not the browser."""
    go(driver, site, '/@@manage')
    assert status(driver) == 403
    text = body_text(driver)
    assert 'Forbidden' in text and says in text, text
    assert not driver.find_elements(By.ID, 'add-form')
    assert not driver.find_elements(By.ID, 'pick-form')


# -- accessibility --------------------------------------------------------

#: a list of what is wrong with the page, by the rules of
#: assert_accessible
A11Y_SCRIPT = r"""
const problems = [];
const text = el => (el ? el.textContent : '').trim();
const describe = el => el.tagName.toLowerCase()
    + (el.id ? '#' + el.id : '') + (el.name ? '[name=' + el.name + ']' : '');
function hasName(el) {
  if ((el.getAttribute('aria-label') || '').trim()) return true;
  const ids = (el.getAttribute('aria-labelledby') || '').split(/\s+/)
      .filter(Boolean);
  if (ids.length && ids.map(i => text(document.getElementById(i)))
      .join('')) return true;
  if (el.id) {
    for (const label of document.querySelectorAll('label[for]')) {
      if (label.htmlFor === el.id && text(label)) return true;
    }
  }
  const around = el.closest('label');
  return !!(around && text(around));
}
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden') continue;
  if (!hasName(el)) problems.push(describe(el) + ': no accessible name');
}
for (const el of document.querySelectorAll(
    'button, input[type=submit], input[type=button], input[type=reset]')) {
  const said = el.tagName === 'BUTTON' ? text(el) : (el.value || '').trim();
  if (!said && !(el.getAttribute('aria-label') || '').trim())
    problems.push(describe(el) + ': a button without text');
}
for (const el of document.querySelectorAll('img, input[type=image]')) {
  if (!el.hasAttribute('alt')) problems.push(describe(el) + ': no alt');
}
const h1 = document.querySelectorAll('h1').length;
if (h1 !== 1) problems.push(h1 + ' h1 elements, not one');
if (!(document.documentElement.getAttribute('lang') || '').trim())
  problems.push('no lang on <html>');
const seen = new Set();
for (const el of document.querySelectorAll('[id]')) {
  if (seen.has(el.id)) problems.push('id ' + el.id + ' used twice');
  seen.add(el.id);
}
return problems;
"""

#: roles whose nodes must have a name in Chrome's accessibility tree
NAMED_ROLES = {'textbox', 'combobox', 'checkbox', 'button', 'link',
               'listbox', 'radio', 'searchbox', 'spinbutton'}


def assert_accessible(driver) -> None:
    """The page's controls have accessible names, buttons text, images
    alt; one ``h1``; ``lang`` on ``<html>``; unique ids. Then the same
    from Chrome's own accessibility tree: every control and link it
    exposes has a name."""
    problems = driver.execute_script(A11Y_SCRIPT)
    tree = driver.execute_cdp_cmd('Accessibility.getFullAXTree', {})
    for node in tree['nodes']:
        if node.get('ignored'):
            continue
        role = (node.get('role') or {}).get('value')
        name = ((node.get('name') or {}).get('value') or '').strip()
        if role in NAMED_ROLES and not name:
            problems.append(f'accessibility tree: a {role} without a name')
    assert not problems, f'{driver.current_url}: {problems}'


def tab_until(driver, wanted, limit: int = MAX_TABS,
              backwards: bool = False) -> int:
    """Press TAB (SHIFT+TAB) until ``wanted(active element)``; how many
    presses it took (at most ``limit``)."""
    for count in range(1, limit + 1):
        keys = ActionChains(driver)
        if backwards:
            keys.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT)
        else:
            keys.send_keys(Keys.TAB)
        keys.perform()
        if wanted(driver.switch_to.active_element):
            return count
    active = driver.switch_to.active_element
    raise AssertionError(
        f'not reached in {limit} TAB presses; focus is on '
        f'<{active.tag_name} id={active.get_attribute("id")!r}>')


def is_id(element_id: str):
    return lambda el: el.get_attribute('id') == element_id


def is_button(text: str, form_id: str):
    """Is an element the button saying ``text`` of form ``form_id``?"""
    def matches(el) -> bool:
        if el.tag_name != 'button' or el.text.strip() != text:
            return False
        owner = el.find_elements(By.XPATH, './ancestor::form[1]')
        return bool(owner) and owner[0].get_attribute('id') == form_id
    return matches


# -- the flow -------------------------------------------------------------


def test_object_browser_flow(site, browser):
    driver = browser

    # 1. Refused without logging in: the 403 page says where to log in;
    # none of the browser's forms are there. An editor is refused too.
    assert_refused(driver, site)
    driver.shot('refused', publish=False)
    log_in(driver, site, *site.editor)
    assert_refused(driver, site, 'ed (editor) may not manage here')
    go(driver, site, '/@@logout')
    log_out(driver)

    # 2. Log in through the form, land, open the browser.
    go(driver, site, '/@@login')
    assert_accessible(driver)
    assert field(driver, 'Password').get_attribute('type') == 'password'
    driver.shot('login')
    log_in(driver, site, *site.manager)
    assert driver.current_url == site.url + '/'
    assert f'{site.manager[0]} (manager)' in body_text(driver)
    assert_accessible(driver)
    go(driver, site, '/@@manage')
    assert status(driver) == 200
    assert heading(driver).startswith('Root')
    assert 'No children.' in body_text(driver)
    assert_accessible(driver)
    # styled by manage.css: loaded, and its rules apply
    assert driver.execute_script(
        "return [...document.styleSheets].some(sheet => sheet.href"
        " && sheet.href.endsWith('/@@manage.css')"
        " && sheet.cssRules.length > 0)"), 'manage.css is not loaded'
    assert driver.execute_script(
        "return getComputedStyle(document.querySelector('header'))"
        ".backgroundColor") != 'rgba(0, 0, 0, 0)'

    # 3. Add the folder 'docs' with the keyboard alone: from the top of
    # the page TAB reaches the add form's Name field, then its Add
    # button; back in Name, ENTER sends the form (Kind: folder, the
    # first).
    assert driver.switch_to.active_element.tag_name == 'body'
    to_name = tab_until(driver, is_id('add-name'))
    tab_until(driver, is_button('Add', 'add-form'))
    tab_until(driver, is_id('add-name'), backwards=True)
    assert to_name < MAX_TABS
    # where the focus is shows (manage.css: an outline on :focus)
    assert driver.execute_script(
        'return getComputedStyle(document.activeElement).outlineStyle'
    ) != 'none'
    add = form(driver, 'add-form')
    assert Select(field(driver, 'Kind', add)).first_selected_option.text \
        == 'folder'
    driver.switch_to.active_element.send_keys('docs')
    send(driver, lambda: driver.switch_to.active_element.send_keys(
        Keys.ENTER))
    assert status(driver) == 200
    assert children(driver) == ['docs']
    assert '0 children' in body_text(driver)
    assert_accessible(driver)

    # 4. Open 'docs', add the item 'hello' with attributes.
    send(driver, link(driver, 'docs').click)
    assert heading(driver).startswith('docs')
    add_child(driver, 'hello', 'item', {'title': 'Hello', 'count': 1})
    assert children(driver) == ['hello']
    assert_accessible(driver)
    driver.shot('contents')

    # 5. The item's page: its attributes, stored types and values.
    send(driver, link(driver, 'hello').click)
    assert driver.current_url == site.url + '/docs/hello/@@manage'
    assert heading(driver) == '/docs/hello'
    shown = attributes(driver)
    assert shown['count'] == ('int', '1')
    assert shown['title'][0] == 'str' and 'Hello' in shown['title'][1]
    assert_accessible(driver)
    driver.shot('object')

    # 6. An edit whose value is not of its type: the same page (400)
    # with the error next to the field, what was typed kept; then a good
    # one.
    edit = form(driver, 'edit-form')
    fill(field(driver, 'Name', edit), 'count')
    Select(field(driver, 'Type', edit)).select_by_visible_text('int')
    fill(field(driver, 'Value', edit), 'abc')
    send(driver, button(driver, 'Set', edit).click)
    assert status(driver) == 400
    assert heading(driver) == '/docs/hello'
    edit = form(driver, 'edit-form')
    value = field(driver, 'Value', edit)
    assert value.get_attribute('value') == 'abc'
    assert value.get_attribute('aria-invalid') == 'true'
    error = driver.find_element(
        By.ID, value.get_attribute('aria-describedby'))
    assert 'is not a whole number' in error.text
    assert driver.execute_script(
        'return arguments[0].nextElementSibling === arguments[1]',
        value, error), 'the error is not next to the field'
    assert error.is_displayed()
    assert driver.find_element(By.CSS_SELECTOR, '[role=alert]').text
    assert attributes(driver)['count'] == ('int', '1')  # unchanged
    assert_accessible(driver)
    driver.shot('edit-error')
    edit = form(driver, 'edit-form')
    fill(field(driver, 'Name', edit), 'count')
    Select(field(driver, 'Type', edit)).select_by_visible_text('int')
    fill(field(driver, 'Value', edit), '5')
    send(driver, button(driver, 'Set', edit).click)
    assert status(driver) == 200
    assert attributes(driver)['count'] == ('int', '5')
    assert 'set count of /docs/hello' in body_text(driver)  # last change

    # 7. Rename 'hello' to 'greeting' from the folder's page (reached by
    # the breadcrumbs).
    send(driver, driver.find_element(
        By.CSS_SELECTOR, 'nav.crumbs').find_element(
            By.LINK_TEXT, 'docs').click)
    rename = form(driver, 'rename-form')
    Select(field(driver, 'Child', rename)).select_by_visible_text('hello')
    fill(field(driver, 'New name', rename), 'greeting')
    send(driver, button(driver, 'Rename', rename).click)
    assert status(driver) == 200
    assert children(driver) == ['greeting']

    # 9. Delete 'greeting': select it, 'Delete…', the confirmation page
    # says what goes, its 'Delete' button.
    select_child(driver, 'greeting')
    pick = form(driver, 'pick-form')
    delete = pick.find_element(
        By.XPATH, ".//button[starts-with(normalize-space(), 'Delete')]")
    send(driver, delete.click)
    assert heading(driver) == 'Delete 1 child?'
    assert 'greeting' in body_text(driver)
    assert_accessible(driver)
    driver.shot('delete-confirmation')
    send(driver, button(driver, 'Delete', form(driver, 'delete-form'))
         .click)
    assert status(driver) == 200
    assert heading(driver).startswith('docs')
    assert children(driver) == []
    assert 'No children.' in body_text(driver)

    # 11. Log out from the header; the browser is refused again.
    log_out(driver)
    assert driver.current_url == site.url + '/'
    assert 'Log in' in body_text(driver)
    assert_refused(driver, site)


# -- the steps on pages being built (run after the flow, on what it left)


def find_undo_row(driver, starts: str):
    """The newest row of the Transactions page whose note (a line of its
    Note column) starts with ``starts``: (its ``undo-form-N``, the
    note)."""
    forms = driver.find_elements(By.CSS_SELECTOR, 'form[id^="undo-form-"]')
    assert forms, f'no undo-form-N on {driver.current_url}'
    forms.sort(key=lambda f: int(f.get_attribute('id').rsplit('-', 1)[1]))
    for undo in forms:
        row = undo.find_element(By.XPATH, './ancestor::tr[1]')
        headers = [th.text.strip() for th in row.find_elements(
            By.XPATH, './ancestor::table[1]/thead//th')]
        note = row.find_elements(By.TAG_NAME, 'td')[headers.index('Note')]
        if any(line.strip().startswith(starts)
               for line in note.text.splitlines()):
            return undo, note.text
    raise AssertionError(f'no transaction noted {starts!r}… on '
                         f'{driver.current_url}')


def test_undo_the_delete(site, browser):
    """10. The flow's delete undone from the Transactions page (the
    newest transaction noted 'deleted …'): 'greeting' is back in 'docs',
    as it was."""
    driver = browser
    log_in(driver, site, *site.manager)
    go(driver, site, '/@@manage')
    send(driver, link(driver, 'Transactions').click)
    assert status(driver) == 200, (
        f'{driver.current_url}: {status(driver)} (the Transactions page '
        '@@manage-transactions is not there yet?)')
    assert_accessible(driver)
    driver.shot('transactions')
    undo, note = find_undo_row(driver, 'deleted')
    assert 'deleted /docs/greeting' in note
    send(driver, button(driver, 'Undo', undo).click)
    assert status(driver) == 200, body_text(driver)
    assert heading(driver).startswith('Transactions')
    assert 'undone' in driver.find_element(
        By.CSS_SELECTOR, '[role=status]').text
    # the undo is the newest transaction now, noted as such
    newest = form(driver, 'undo-form-0').find_element(
        By.XPATH, './ancestor::tr[1]')
    assert 'deleted /docs/greeting' in newest.text
    assert_accessible(driver)
    go(driver, site, '/docs/@@manage')
    assert children(driver) == ['greeting']
    send(driver, link(driver, 'greeting').click)
    shown = attributes(driver)
    assert shown['count'] == ('int', '5')
    assert 'Hello' in shown['title'][1]


def test_move_by_cut_and_paste(site, browser):
    """8. Cut 'greeting' from 'docs' (the contents page's selection and
    its Cut button), paste it into a new root folder 'archive' (the
    folder's paste form): the same object, now only there. Then 9 on the
    moved item: the selection's Delete button and the confirmation."""
    driver = browser
    log_in(driver, site, *site.manager)
    go(driver, site, '/docs/@@manage')
    if 'greeting' not in children(driver):  # not restored by the undo
        add_child(driver, 'greeting', 'item', {'title': 'Hello',
                                               'count': 5})
    pick = form(driver, 'pick-form')
    assert pick.get_attribute('method').lower() == 'post', (
        'the contents page\'s pick-form is still a GET form: no cut and '
        'paste yet')
    select_child(driver, 'greeting')
    cut = pick.find_element(
        By.CSS_SELECTOR, 'button[name="do"][value="cut"]')
    assert cut.text.strip(), 'the Cut button has no text'
    send(driver, cut.click)
    assert status(driver) == 200, body_text(driver)
    # nothing moved yet; the clipboard says what it holds
    assert children(driver) == ['greeting']
    assert 'greeting' in form(driver, 'paste-form').text
    assert_accessible(driver)

    go(driver, site, '/@@manage')
    add_child(driver, 'archive', 'folder')
    assert 'archive' in children(driver)
    send(driver, link(driver, 'archive').click)
    paste = form(driver, 'paste-form')
    assert paste.get_attribute('method').lower() == 'post'
    assert paste.get_attribute('action').endswith('@@manage-paste')
    assert_accessible(driver)
    driver.shot('paste')
    send(driver, button(driver, 'Paste', paste).click)
    assert status(driver) == 200, body_text(driver)
    assert heading(driver).startswith('archive')
    assert children(driver) == ['greeting']
    # a cut is pasted once: the clipboard is empty, its form gone
    assert not driver.find_elements(By.ID, 'paste-form')
    send(driver, link(driver, 'greeting').click)
    assert driver.current_url == site.url + '/archive/greeting/@@manage'
    assert attributes(driver)['count'] == ('int', '5')
    go(driver, site, '/docs/@@manage')
    assert children(driver) == []

    # 9 again, on the moved item: the selection's Delete button.
    go(driver, site, '/archive/@@manage')
    select_child(driver, 'greeting')
    pick = form(driver, 'pick-form')
    send(driver, pick.find_element(
        By.CSS_SELECTOR, 'button[name="do"][value="delete"]').click)
    assert heading(driver) == 'Delete 1 child?'
    send(driver, button(driver, 'Delete', form(driver, 'delete-form'))
         .click)
    assert heading(driver).startswith('archive')
    assert children(driver) == []
