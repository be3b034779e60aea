import pytest

from pyramid_zeostore import Folder
from pyramid_zeostore.app.content import (
    Item,
    is_attribute_name,
    public_attributes,
)
from pyramid_zeostore.resolvers import TLSOptions


def test_item_keeps_its_attributes():
    item = Item(title='T', n=1)
    assert (item.title, item.n) == ('T', 1)
    item.__name__ = 'x'
    assert repr(item) == "<Item 'x'>"


def test_public_attributes_show_only_json_data():
    item = Item(a=1, b=[1, 'x'], c={'k': None}, d=object(), e={1: 2})
    item._hidden = 2
    assert public_attributes(item) == {'a': 1, 'b': [1, 'x'], 'c': {'k': None}}
    assert public_attributes(object()) == {}
    folder = Folder()
    folder.title = 'F'
    assert public_attributes(folder) == {'title': 'F'}


@pytest.mark.parametrize(
    'name, ok',
    [
        ('title', True),
        ('_p', False),
        ('data', False),
        ('keys', False),  # a Folder method
        ('not an identifier', False),
        (3, False),
    ],
)
def test_attribute_names(name, ok):
    assert is_attribute_name(Folder(), name) is ok


def test_tls_context_without_hostname_skips_the_name_check():
    import ssl

    ctx = TLSOptions().context()
    assert ctx.check_hostname is False
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert TLSOptions(server_hostname='h').context().check_hostname is True
