"""An app written for the classic stack (pyramid_tm, pyramid_retry,
pyramid_zodbconn), in the shape the Pyramid cookiecutter's ZODB option
and the wiki tutorial give it, with the one line that moves it here.

Its own root factory runs an appmaker that creates the app root without
committing (the request's transaction does), as those apps do.
"""

from __future__ import annotations

from persistent.mapping import PersistentMapping
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPSeeOther

from pyramid_zeostore import get_connection


class MyModel(PersistentMapping):
    __parent__ = __name__ = None


def appmaker(zodb_root):
    if 'app_root' not in zodb_root:
        app_root = MyModel()
        zodb_root['app_root'] = app_root
    return zodb_root['app_root']


def root_factory(request):
    conn = get_connection(request)
    return appmaker(conn.root())


def home(context, request):
    return {'names': sorted(context)}


def add(context, request):
    context[request.params['name']] = request.params.get('value', '')
    return HTTPSeeOther(request.application_url + '/')


def main(global_config, **settings):
    with Configurator(settings=settings) as config:
        config.include('pyramid_tm')
        config.include('pyramid_retry')
        config.include('pyramid_zeostore')  # was: pyramid_zodbconn
        config.set_root_factory(root_factory)
        config.add_view(home, context=MyModel, renderer='json')
        config.add_view(add, context=MyModel, name='add',
                        request_method='POST')
        config.add_view(visit, context=MyModel, name='visit',
                        renderer='json')
    return config.make_wsgi_app()


def visit(context, request):
    """A GET that writes, as some classic views do (a hit counter)."""
    context['visits'] = context.get('visits', 0) + 1
    return {'visits': context['visits']}


def pshell_setup(env):
    """The cookiecutter's and the tutorial's pshell setup."""
    request = env['request']
    request.tm.begin()
    env['tm'] = request.tm


def main_with_appmaker(global_config, **settings):
    """The same app with the one-line fix for pshell on an empty
    database: the package's root factory and this appmaker, which it
    bootstraps (commits) once per process, instead of its own."""
    with Configurator(settings=settings) as config:
        config.include('pyramid_zeostore')
        config.set_zodb_appmaker(appmaker)
        config.add_view(home, context=MyModel, renderer='json')
        config.add_view(add, context=MyModel, name='add',
                        request_method='POST')
    return config.make_wsgi_app()
