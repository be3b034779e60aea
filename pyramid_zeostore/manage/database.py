"""(being written)"""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    """Register this module's pages."""
