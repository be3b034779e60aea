"""{{ cookiecutter.project_name }}: a Pyramid app on a ZODB folder tree."""

from pyramid.config import Configurator


def main(global_config, **settings):
    """Return the WSGI app (``use = egg:{{ cookiecutter.repo_name }}``)."""
    with Configurator(settings=settings) as config:
        # Databases (zodb_uri), the request's connection, pyramid_tm and
        # pyramid_retry, and the root: the appmaker's.
        config.include('pyramid_zeostore')
        config.set_zodb_appmaker('.models.appmaker')
        config.include('pyramid_jinja2')
        config.add_static_view('static', 'static', cache_max_age=3600)
        config.include('.views')
    return config.make_wsgi_app()
