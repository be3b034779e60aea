"""The ZODB panel: pyramid_debugtoolbar's view of :mod:`.collect`.

Imported only when pyramid_debugtoolbar is included (it imports the
toolbar); :func:`pyramid_zeostore.debugtoolbar.includeme` names it by its
dotted name.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from pyramid_debugtoolbar.panels import DebugPanel

from . import collect


class ZODBDebugPanel(DebugPanel):
    """Per request and per database: objects loaded and stored, the
    connection cache, time loading and in two-phase commit, conflicts and
    retries, the fast read path and the sync cookie, the transaction's
    note and user."""

    name = 'zodb'
    has_content = True
    # A path, not an asset spec: pkg_resources cannot read a package that
    # pytest imported through its assertion rewriter (pyramid_zeostore's
    # own pytest plugin makes pytest rewrite the whole distribution).
    template = os.path.join(
        os.path.dirname(__file__), 'templates', 'zodb.dbtmako'
    )
    title = 'ZODB'
    nav_title = 'ZODB'

    def __init__(self, request: Any) -> None:
        self.attempt = collect.start(request)
        self.activity = request.environ[collect.KEY]

    def wrap_handler(self, handler: Callable[[Any], Any]) -> Callable:
        def zodb_panel_handler(request: Any) -> Any:
            try:
                response = handler(request)
            except Exception as exc:
                collect.ended(request, exc)
                raise
            # An exception view's answer (a squashed retryable error too).
            collect.ended(request, getattr(request, 'exception', None))
            return response

        return zodb_panel_handler

    @property
    def nav_subtitle(self) -> str:
        attempt = self.attempt
        return f'{attempt.loads}/{attempt.stores}'

    @property
    def nav_subtitle_style(self) -> str:
        return 'progress-bar-warning' if self.activity.conflicts else ''

    def render_vars(self, request: Any) -> dict:
        return {
            'activity': self.activity,
            'attempt': self.attempt,
            'winner': self.activity.winner,
            'max_rows': collect.MAX_ROWS,
        }
