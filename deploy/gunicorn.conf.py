"""gunicorn settings for myapp.

    gunicorn -c /srv/myapp/deploy/gunicorn.conf.py \\
        --paste /srv/myapp/deploy/production.ini

is the same as ``gunicorn --paste production.ini -w 4 --preload -b
127.0.0.1:8000``. ``--paste`` stays on the command line: from there
gunicorn also applies the ini's [loggers] (to stderr).

Every worker is a ZEO client of its own: pyramid_zeostore opens the
database lazily in each process and again after a fork, so ``--preload``
(the app is loaded once in the master, then forked) is safe and saves
memory and start-up time.

Run it as a user of group www-data (``--group www-data``, or Group= in
its systemd unit) so that the workers can reach ZEO's socket.
"""

bind = ['127.0.0.1:8000']  # behind a reverse proxy (nginx, Apache)
workers = 4
threads = 1
preload_app = True
timeout = 60
graceful_timeout = 15
accesslog = '-'
errorlog = '-'
