"""Views called directly, with pyramid_zeostore's ``dummy_request``: its
``root`` and ``context`` are the site, its ``tm`` the test's transaction
manager."""

import pytest
from pyramid.httpexceptions import HTTPBadRequest
from pyramid_zeostore import Folder

from {{ cookiecutter.repo_name }}.models import Document
from {{ cookiecutter.repo_name }}.views import (
    add_view,
    document_view,
    edit_view,
    folder_view,
)


def post(request, **form):
    request.method = 'POST'
    request.POST = form
    return request


def test_folder_view_lists_the_contents(dummy_request):
    site = dummy_request.root
    site['b'] = Document('Bee')
    site['a'] = Folder()
    data = folder_view(site, dummy_request)
    assert data['title'] == "{{ cookiecutter.project_name }}"
    assert data['count'] == 2
    assert [(i['name'], i['title'], i['kind']) for i in data['items']] == [
        ('a', 'a', 'folder'),
        ('b', 'Bee', 'document'),
    ]
    assert data['next_url'] is None


def test_folder_view_pages(dummy_request):
    site = dummy_request.root
    for n in range(60):
        site[f'd{n:02}'] = Document()
    first = folder_view(site, dummy_request)
    assert len(first['items']) == 50
    assert first['next_url'].endswith('?after=d49')
    dummy_request.params = {'after': 'd49'}
    second = folder_view(site, dummy_request)
    assert [i['name'] for i in second['items']] == [
        f'd{n}' for n in range(50, 60)
    ]
    assert second['next_url'] is None


def test_add_view_adds_a_document(dummy_request):
    site = dummy_request.root
    post(dummy_request, name='hello', title='Hello', body='Hi.')
    response = add_view(site, dummy_request)
    assert response.status_int == 303
    assert response.location == dummy_request.resource_url(site)
    assert (site['hello'].title, site['hello'].body) == ('Hello', 'Hi.')
    dummy_request.tm.commit()  # what the view did, saved


def test_add_view_adds_a_folder(dummy_request):
    site = dummy_request.root
    add_view(site, post(dummy_request, name='docs', kind='folder'))
    assert isinstance(site['docs'], Folder)
    assert site['docs'].title == 'docs'


@pytest.mark.parametrize('form', [
    {'name': ''},
    {'name': 'a/b'},
    {'name': '@@add'},
    {'name': 'x', 'kind': 'spaceship'},
])
def test_add_view_refuses_bad_input(dummy_request, form):
    with pytest.raises(HTTPBadRequest):
        add_view(dummy_request.root, post(dummy_request, **form))
    assert len(dummy_request.root) == 0


def test_add_view_refuses_a_taken_name(dummy_request):
    site = dummy_request.root
    site['taken'] = Document('First')
    with pytest.raises(HTTPBadRequest, match='already exists'):
        add_view(site, post(dummy_request, name='taken'))
    assert site['taken'].title == 'First'


def test_document_view_and_edit(dummy_request):
    doc = dummy_request.root['doc'] = Document('Old', 'old text')
    assert document_view(doc, dummy_request)['title'] == 'Old'
    response = edit_view(doc, post(dummy_request, title='New', body='new'))
    assert response.status_int == 303
    assert (doc.title, doc.body) == ('New', 'new')


def test_edit_view_needs_a_title(dummy_request):
    doc = dummy_request.root['doc'] = Document('Old', 'old text')
    with pytest.raises(HTTPBadRequest):
        edit_view(doc, post(dummy_request, title=' ', body='new'))
