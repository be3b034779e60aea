"""What the ready app accepts as an attribute value, and how it tells a
path or query string that is not UTF-8."""

from __future__ import annotations

import pytest

from pyramid_zeostore.app.content import MAX_DEPTH, value_problem
from pyramid_zeostore.errorviews import undecodable


def nested(depth):
    value = 1
    for _ in range(depth):
        value = {'x': value}
    return value


@pytest.mark.parametrize('value', [
    'text', 1, 1.5, True, None, [1, 'a'], {'a': [None]}, nested(MAX_DEPTH),
    10 ** 100,
])
def test_json_values_are_accepted(value):
    assert value_problem(value) is None


@pytest.mark.parametrize('value, words', [
    (float('nan'), 'finite'),
    (float('inf'), 'finite'),
    ('x\udc80', 'lone surrogates'),
    ([['\ud800']], 'lone surrogates'),
    ({1: 'a'}, 'keys must be text'),
    ({'k': {'\udfff': 1}}, 'lone surrogates'),
    (nested(MAX_DEPTH + 1), f'at most {MAX_DEPTH} levels'),
    ((1, 2), 'tuple is not a JSON value'),
    (object(), 'object is not a JSON value'),
])
def test_other_values_are_refused(value, words):
    assert words in value_problem(value)


@pytest.mark.parametrize('path, query, part', [
    ('/', '', None),
    ('/caf\xc3\xa9', 'q=caf%C3%A9&x=+y', None),
    ('/\xff', '', 'path'),
    ('/', 'after=%FF', 'query string'),
    ('/', '%C0%AF=1', 'query string'),
    ('/', 'raw=\xff', 'query string'),
])
def test_undecodable(path, query, part):
    assert undecodable({'PATH_INFO': path, 'QUERY_STRING': query}) == part
