"""The object browser's rendering of stored state, without any app code."""

from __future__ import annotations

import datetime
import decimal

from persistent import Persistent

from pyramid_zeostore.manage import render


class Slotted(Persistent):
    __slots__ = ('a',)

    def __init__(self):
        self.a = 1


class Raw(Persistent):
    """State that is neither a dict nor (dict, slots)."""

    def __getstate__(self):
        return [1, 2]

    def __setstate__(self, state):  # pragma: no cover - not loaded here
        pass


class Loud:
    def __repr__(self):  # pragma: no cover - must not be called
        raise AssertionError('render ran __repr__')


def test_scalars_text_and_bytes():
    assert render.show(True).text == 'True'
    assert render.show(None).text == 'None'
    assert render.show(decimal.Decimal('1.5')).text == "Decimal('1.5')"
    long = render.show('x' * (render.MAX_TEXT + 5))
    assert len(long.text) == render.MAX_TEXT and long.more == 5
    value = b'\x00\xff' * render.MAX_TEXT
    shown = render.show(value)  # more: bytes left out
    assert shown.text.startswith('00 ff') and len(shown.text) < 2001
    assert shown.more == len(value) - render.MAX_TEXT // 3
    assert render.show(b'ab').text == '61 62'
    assert render.show(datetime.date(2026, 12, 7)).text == '2026-12-07'
    assert render.show(datetime.timedelta(seconds=3)).text == '0:00:03'


def test_containers_are_bounded_and_nested_keys_shown():
    shown = render.show(list(range(render.MAX_MEMBERS + 3)))
    assert len(shown.members) == render.MAX_MEMBERS and shown.more == 3
    shown = render.show({1: 'one', 'k': {'deep': [1]}})
    assert [key for key, _ in shown.members] == ['1', 'k']
    deep: list = []
    inner = deep
    for _ in range(render.MAX_DEPTH + 2):
        inner.append([])
        inner = inner[0]
    text = render.show(deep)
    while text.kind == 'members':
        text = text.members[0][1]
    assert text.text == '…'


def test_other_values_by_their_class_alone():
    shown = render.show(Loud())
    assert shown.text == f'<{__name__}.Loud>'


def test_persistent_values_are_links():
    shown = render.show(Slotted())
    assert shown.kind == 'link' and shown.oid is None  # not stored yet


def test_stored_state_of_slots_and_odd_states():
    obj = Slotted()
    assert render.stored_state(obj) == {'a': 1}
    assert render.stored_state(Raw()) == {'(state)': [1, 2]}
    names = [name for name, _, _ in render.attributes(obj)]
    assert names == ['a']


def test_settable_names_are_the_json_apis():
    # The object browser and the JSON API share one rule.
    from pyramid_zeostore import Folder
    from pyramid_zeostore.app.content import attribute_problem

    folder = Folder()
    assert attribute_problem(folder, 'title') is None
    assert attribute_problem(folder, 'é') is None  # an identifier
    for name in ('_p_oid', '1x', 3, 'keys', 'add', 'order', 'data'):
        assert attribute_problem(folder, name) is not None, name
