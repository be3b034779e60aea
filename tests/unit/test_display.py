"""One way to show addresses and URIs: brackets for IPv6, no passwords."""

from __future__ import annotations

import pytest

from pyramid_zeostore.display import address_json, format_address


@pytest.mark.parametrize('address, shown', [
    ('/var/zeo.sock', '/var/zeo.sock'),
    (('127.0.0.1', 8100), '127.0.0.1:8100'),
    (('::1', 8100), '[::1]:8100'),
    (('', 8100), ':8100'),
    ([('::1', 1), '/s'], '[::1]:1, /s'),
    (('a', 1, 'x'), 'a, 1, x'),  # not a (host, port): a list of three
    ('postgres://u:pw@h/db?password=x', 'postgres://u:***@h/db?password=***'),
    ('zeo:///s.sock?PASSWD=secret&x=1', 'zeo:///s.sock?PASSWD=***&x=1'),
    ('dbname=z password=secret host=h', 'dbname=z password=*** host=h'),
])
def test_format_address(address, shown):
    assert format_address(address) == shown


def test_json_keeps_a_list_a_list():
    assert address_json([('::1', 1), '/s']) == ['[::1]:1', '/s']
    assert address_json(('h', 2)) == 'h:2'
