"""The ready app's traverser: 404 below a plain value, the rest Pyramid's
(its own tests cover that)."""

from __future__ import annotations

import pytest
from persistent import Persistent
from pyramid.httpexceptions import HTTPNotFound
from pyramid.testing import DummyRequest

from pyramid_zeostore import Folder
from pyramid_zeostore.app.traversal import Traverser, below_a_value


class Broken(Persistent):
    """An app's class whose lookup has a bug."""

    def __getitem__(self, name):
        raise TypeError('a bug in the app')


class Odd:
    def __getitem__(self, name):
        raise ValueError(name)


@pytest.fixture
def root():
    root = Folder()
    root['f'] = Folder()
    root['f']['s'] = 'text'
    root['f']['l'] = [1, 2]
    root['b'] = Broken()
    root['o'] = Odd()
    return root


def traverse(root, path):
    request = DummyRequest(path=path)
    request.matchdict = None  # not a route's: path_info is traversed
    return Traverser(root)(request)


@pytest.mark.parametrize('path', ['/f/s/x', '/f/l/0', '/f/l/0/deeper'])
def test_below_a_value_is_not_found(root, path):
    assert below_a_value(root, path)
    with pytest.raises(HTTPNotFound):
        traverse(root, path)


@pytest.mark.parametrize('path', [
    '/', '/f', '/f/s', '/f/@@view/x', '/nope/x', '/o/x', '/b/x',
])
def test_elsewhere_it_is_not(root, path):
    assert not below_a_value(root, path)


def test_an_apps_own_type_error_stays_an_error(root):
    with pytest.raises(TypeError, match='a bug in the app'):
        traverse(root, '/b/x')
    assert traverse(root, '/f/s')['context'] == 'text'
