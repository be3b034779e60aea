"""The one jittered exponential backoff."""

from __future__ import annotations

from pyramid_zeostore import backoff as module
from pyramid_zeostore.backoff import backoff, pause


def test_the_bound_doubles_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(module.random, 'uniform', lambda a, b: (a, b))
    assert [backoff(n, 0.01, 0.05) for n in (1, 2, 3, 4)] == [
        (0, 0.01), (0, 0.02), (0, 0.04), (0, 0.05)
    ]


def test_pause_sleeps_the_backoff(monkeypatch):
    slept = []
    monkeypatch.setattr(module.random, 'uniform', lambda a, b: b)
    monkeypatch.setattr(module.time, 'sleep', slept.append)
    pause(3, 0.01, 1.0)
    assert slept == [0.04]
