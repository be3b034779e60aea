"""The whole app through WebTest (pyramid_zeostore's ``testapp``): each
request is a real transaction; ``zodb_root`` / ``site`` (tests/conftest.py)
see what it committed, and nothing of a request that failed."""

from {{ cookiecutter.repo_name }}.models import Document


def test_front_page_shows_the_root_folder(testapp):
    response = testapp.get('/', status=200)
    assert "<h1>{{ cookiecutter.project_name }}</h1>" in response.text
    assert 'Nothing here yet.' in response.text
    assert 'add' in response.forms


def test_adding_through_the_form_commits(testapp, site):
    form = testapp.get('/').forms['add']
    form['name'] = 'hello'
    form['title'] = 'Hello'
    form['body'] = 'Written through the form.'
    page = form.submit(status=303).follow(status=200)
    assert 'Hello' in page.text

    # Committed: the test's own connection sees it.
    assert site['hello'].title == 'Hello'
    assert site['hello'].body == 'Written through the form.'
    testapp.get('/hello', status=200).mustcontain('Written through the form.')


def test_what_the_test_commits_the_app_sees(testapp, site, zodb_conn):
    site['prepared'] = Document('Prepared', 'by the test')
    zodb_conn.transaction_manager.commit()
    testapp.get('/prepared', status=200).mustcontain('by the test')


def test_a_failing_request_leaves_nothing_behind(testapp, site, zodb_conn):
    site['doc'] = Document('Doc', 'old text')
    zodb_conn.transaction_manager.commit()

    form = testapp.get('/doc').forms['edit']
    form['title'] = ''  # refused, after the view has set the text
    form['body'] = 'new text'
    form.submit(status=400)

    assert site['doc'].body == 'old text'
    assert site['doc'].title == 'Doc'


def test_a_write_without_the_csrf_token_is_refused(testapp, site):
    testapp.post('/@@add', {'name': 'sneaky'}, status=400)
    assert 'sneaky' not in site


def test_an_unknown_path_is_404(testapp):
    testapp.get('/no/such/thing', status=404)


def test_the_stylesheet_is_served(testapp):
    testapp.get('/static/style.css', status=200)
