"""What the ready app (and its object browser) accepts as an attribute
name and value, how it shows a plain value, and how it tells a path or
query string that is not UTF-8."""

from __future__ import annotations

import re

import pytest

from pyramid_zeostore import Folder
from pyramid_zeostore.app.content import (
    INT_LIMIT,
    MAX_DEPTH,
    MAX_REPR,
    Item,
    attribute_problem,
    is_attribute_name,
    is_value,
    loads,
    shown_value,
    value_problem,
)
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


class Document(Item):
    """An app's class: a plain default, a property, a method."""

    title = ''

    @property
    def size(self):
        return 0

    def render(self):
        return ''


@pytest.mark.parametrize('obj, name, problem', [
    (Folder(), 'title', None),
    (Folder(), 'café', None),
    (Item(), 'data', None),  # only folders keep their children there
    (Item(), 'keys', None),  # Item has none
    (Document(), 'title', None),  # a plain class default: shadowed
    (Folder(), 'keys', 'taken by Folder (its method keys)'),
    (Folder(), 'add', 'taken by Folder (its method add)'),
    (Folder(), 'order', 'taken by Folder (its property order)'),
    (Folder(), 'data', 'taken by Folder (folders keep their children'),
    (Document(), 'size', 'taken by Document (its property size)'),
    (Document(), 'render', 'taken by Document (its method render)'),
    (Item(), '_p_x', 'expected a name of letters, digits and _, not '
                     'starting with _ or a digit'),
    (Item(), '1x', 'expected a name of letters'),
    (Item(), 'a b', 'expected a name of letters'),
    (Item(), 3, '3 is not an attribute you can set'),
])
def test_the_one_rule_for_attribute_names(obj, name, problem):
    found = attribute_problem(obj, name)
    if problem is None:
        assert found is None and is_attribute_name(obj, name)
    else:
        assert problem in found and not is_attribute_name(obj, name)
        assert found.startswith(f'{name!r} is not an attribute you can set')


def test_numbers_json_cannot_carry_are_refused():
    assert value_problem(INT_LIMIT - 1) is None
    assert value_problem(-INT_LIMIT + 1) is None
    for value in (INT_LIMIT, -INT_LIMIT, [1, {'x': 10 ** 5000}]):
        assert 'at most 4300 digits' in value_problem(value)


@pytest.mark.parametrize('text, words', [
    ('[' * 30000, 'values may nest at most 32 levels deep'),
    ('[' * 30000 + ']' * 30000, 'values may nest at most 32 levels deep'),
    ('{"x": NaN}', 'NaN is not a JSON number'),
    ('[-Infinity]', '-Infinity is not a JSON number'),
    ('{"a" 1}', "Expecting ':' delimiter"),
])
def test_loads_says_what_is_wrong(text, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        loads(text)


def test_loads_reads_json():
    assert loads('{"a": [1, 2.5, null, "x"]}') == {'a': [1, 2.5, None, 'x']}


class Loud:
    def __repr__(self):  # pragma: no cover - must not be called
        raise AssertionError('shown_value ran __repr__')


@pytest.mark.parametrize('value, shown', [
    (1, {'value': 1}),
    (None, {'value': None}),
    ({'k': [True]}, {'value': {'k': [True]}}),
    ((1, 2), {'repr': '(1, 2)'}),
    (float('nan'), {'repr': 'nan'}),
    pytest.param(10 ** 5000, {'repr': '<int of about 5000 digits>'},
                 id='5000-digits'),
    pytest.param((-10 ** 4300, 1), {'repr': '(<int of about 4300 digits>, 1)'},
                 id='4301-digits-in-a-tuple'),
])
def test_a_plain_value_is_shown_as_json_or_a_bounded_repr(value, shown):
    assert shown_value(value) == shown


def test_no_code_of_an_application_class_is_run():
    assert shown_value([Loud(), (1, Item())]) == {'repr': (
        '[<tests.unit.test_app_content.Loud>, (1, '
        '<pyramid_zeostore.app.content.Item>)]')}


def test_a_long_repr_is_cut():
    for value in ((b'x' * 5000,), {1, *range(100_000)}, b'y' * 5000):
        text = shown_value(value)['repr']
        assert len(text) <= MAX_REPR


def test_what_is_a_plain_value():
    assert all(is_value(v) for v in (1, 'x', None, [1], {}, (1,), Loud()))
    assert not any(is_value(v) for v in (Item(), Folder(), Document()))
