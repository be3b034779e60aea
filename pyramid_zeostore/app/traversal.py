"""The ready app's traverser: Pyramid's, except that a path going on
below a plain value (a text, list or number child of a folder) is not
found (404) instead of a 500.

Pyramid looks each segment up with ``context[segment]`` and takes a
``KeyError`` (or no ``__getitem__``) as the end of the path; a ``str`` or
``list`` raises ``TypeError`` for a text key, which would escape as a 500.
"""

from __future__ import annotations

from typing import Any

from persistent import Persistent
from pyramid.httpexceptions import HTTPNotFound
from pyramid.traversal import ResourceTreeTraverser, split_path_info

VIEW_SELECTOR = '@@'


class Traverser(ResourceTreeTraverser):
    """See the module."""

    def __call__(self, request: Any) -> dict:
        try:
            return super().__call__(request)
        except TypeError:
            if not below_a_value(self.root, request.path_info or '/'):
                raise  # an app's own __getitem__ failed: its bug to see
            raise HTTPNotFound() from None


def below_a_value(root: Any, path: str) -> bool:
    """Does ``path`` go on below a child that is a plain value (not a
    persistent object, a mapping or None) whose ``[text]`` raises
    ``TypeError``?"""
    context = root
    for segment in split_path_info(path):
        if segment.startswith(VIEW_SELECTOR):
            return False
        try:
            context = context[segment]
        except TypeError:
            # From a plain value's own [text]; a persistent object's or a
            # mapping's TypeError is the app's.
            return hasattr(context, '__getitem__') and not isinstance(
                context, Persistent | dict
            )
        except Exception:  # noqa: BLE001 - the traverser's to report
            return False
    return False
