"""A PasteDeploy filter that names the process answering each request.

``[filter:workerpid]`` / ``use = call:tests.functional.workerpid:
filter_factory`` in front of the app adds ``X-Worker-Pid: <pid>`` to every
response, so a test can tell which worker (gunicorn, mod_wsgi daemon)
served it.
"""

import os


def filter_factory(global_conf, **local_conf):
    def make_filter(app):
        def middleware(environ, start_response):
            def add_pid(status, headers, exc_info=None):
                headers = list(headers)
                headers.append(('X-Worker-Pid', str(os.getpid())))
                return start_response(status, headers, exc_info)

            return app(environ, add_pid)

        return middleware

    return make_filter


# -- test-only additions to the app, for the deployment and fault tests ------
#
# ``pyramid.includes = tests.functional.workerpid`` in the app's settings
# runs ``includeme`` below (the ready app's ``main`` builds a Configurator
# from its settings, which includes ``pyramid.includes``):
#
# ``zeostore_test.hold_open = true``
#     once the app is made, open its databases and keep them open: under
#     ``gunicorn --preload`` the master then holds a live ZEO client (its
#     socket and I/O thread) when it forks the workers, the hard case of
#     fork safety (``main``'s own start-up check closes them again).
# ``zeostore_test.slow_dir = DIR``
#     ``POST /path/@@slow-write`` ``{"attribute": "counter", "folder": F,
#     "name": N, "seconds": S}``: adds 1 to the attribute of the context,
#     adds an item ``N`` to the folder ``F`` of the root, writes this
#     process's pid to ``DIR/N.pid``, then sleeps ``S`` seconds (at most
#     20) before pyramid_tm commits: a worker to kill in the middle of a
#     write.

SLOW_MAX_SECONDS = 20.0


def includeme(config):
    from pyramid.events import ApplicationCreated
    from pyramid.settings import asbool

    settings = config.get_settings()
    if asbool(settings.get('zeostore_test.hold_open', False)):
        config.add_subscriber(_hold_open, ApplicationCreated)
    if settings.get('zeostore_test.slow_dir'):
        config.add_view(_slow_write, name='slow-write', request_method='POST')
    if settings.get('zeostore_test.invalidation_delay'):
        _delay_invalidations(
            float(settings['zeostore_test.invalidation_delay'])
        )


def _delay_invalidations(seconds):
    """Let this process's ZEO client take ``seconds`` to apply each
    invalidation, as a busy client would: reads that do not sync with the
    server then see the state from before other processes' commits."""
    import time

    from ZEO.ClientStorage import ClientStorage

    real = ClientStorage.invalidateTransaction

    def slow(self, tid, oids):
        time.sleep(seconds)
        return real(self, tid, oids)

    ClientStorage.invalidateTransaction = slow


def _hold_open(event):
    from pyramid_zeostore import get_databases

    get_databases(event.app.registry).get('')


def _slow_write(context, request):
    import time

    from pyramid.response import Response

    from pyramid_zeostore.app.content import Item

    body = request.json_body
    name = body.get('attribute', 'counter')
    setattr(context, name, getattr(context, name, 0) + 1)
    request.root[body['folder']].add(body['name'], Item(slow=True))
    request.zodb_conn.savepoint()  # the changes are written to the conn
    directory = request.registry.settings['zeostore_test.slow_dir']
    path = os.path.join(directory, body['name'] + '.pid')
    with open(path + '.tmp', 'w') as f:
        f.write(str(os.getpid()))
    os.rename(path + '.tmp', path)  # whole, or not there
    time.sleep(min(float(body.get('seconds', 10)), SLOW_MAX_SECONDS))
    return Response(json_body={'pid': os.getpid()})
