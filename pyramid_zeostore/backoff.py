"""Jittered exponential backoff: the one pause before every retry.

A request retried after a conflict, a script's attempt, the bootstrap of
the root and the creation of a new database's root object all retry
after another process won a race. If the losers all waited the same
time they would collide again, so each waits a random time up to a bound
that doubles per retry ("full jitter"), up to a cap.
"""

from __future__ import annotations

import random
import time


def backoff(retry: int, base: float, cap: float) -> float:
    """Seconds to wait before retry ``retry`` (1 is the first): uniform
    in ``[0, min(cap, base * 2 ** (retry - 1))]``."""
    return random.uniform(0, min(cap, base * 2 ** (retry - 1)))


def pause(retry: int, base: float, cap: float) -> None:
    """Sleep the :func:`backoff` of retry ``retry``."""
    time.sleep(backoff(retry, base, cap))
