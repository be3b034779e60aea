"""The bare app of ``benchmarks/bench.py``: the same routes, no database.

Pyramid with the ready app's own view callables
(``pyramid_zeostore.app``, its cross-site checks included) over the
seeded root folder built in memory (``seed.build_root``): the same pages
and JSON bodies as the two database apps, without ZODB, ZEO, pyramid_tm
or pyramid_retry, and with no users to check (a policy that lets anyone
do anything: there is no database to keep them in). What the database
apps cost is their distance from this.

Each worker holds its own copy: writes change that worker's folder only
and are lost when it exits (the benchmark checks writes on the database
apps alone). Serve it with ``gunicorn --pythonpath benchmarks --paste
bare.ini`` where the ini says ``paste.app_factory = bare_app:main``.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.security import Allowed


class AnyoneMayDoAnything:
    """The bare app's security policy: no users, everything allowed."""

    def identity(self, request: Any) -> None:
        return None

    def authenticated_userid(self, request: Any) -> None:
        return None

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        return Allowed('the bare app checks no one')

    def remember(self, request: Any, userid: Any, **kw: Any) -> list:
        return []

    forget = remember


def main(global_config: dict, **settings: Any) -> Any:
    from seed import ITEMS, build_root

    root = build_root(int(settings.get('bench.items', ITEMS)))

    def root_factory(request: Any) -> Any:
        return root

    with Configurator(settings=settings, root_factory=root_factory) as config:
        config.include('pyramid_zeostore.app')
        config.set_security_policy(AnyoneMayDoAnything())
    return config.make_wsgi_app()
