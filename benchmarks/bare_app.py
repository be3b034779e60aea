"""The bare app of ``benchmarks/bench.py``: the same routes, no database.

Pyramid with the ready app's own view callables
(``pyramid_zeostore.app``, CSRF policy included) over the seeded root
folder built in memory (``seed.build_root``): the same pages and JSON
bodies as the two database apps, without ZODB, ZEO, pyramid_tm or
pyramid_retry. What the database apps cost is their distance from this.

Each worker holds its own copy: writes change that worker's folder only
and are lost when it exits (the benchmark checks writes on the database
apps alone). Serve it with ``gunicorn --pythonpath benchmarks --paste
bare.ini`` where the ini says ``paste.app_factory = bare_app:main``.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator


def main(global_config: dict, **settings: Any) -> Any:
    from seed import ITEMS, build_root

    root = build_root(int(settings.get('bench.items', ITEMS)))

    def root_factory(request: Any) -> Any:
        return root

    with Configurator(settings=settings, root_factory=root_factory) as config:
        config.include('pyramid_zeostore.app')
    return config.make_wsgi_app()
