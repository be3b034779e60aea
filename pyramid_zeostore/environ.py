"""The names the layers of a request share: environ keys, safe methods.

A request's attempts (pyramid_retry runs a request again on the same
environ) and the package's tweens, connection and error views pass what
they know through ``request.environ``; every key they use is defined
here once, with the one set of methods that change nothing, so that each
layer can import it without importing another.
"""

from __future__ import annotations

#: Methods that change nothing (RFC 9110, 9.2.1): they take the fast
#: read path, never the host lock, and a 503 for them says nothing was
#: saved. TRACE is among them: it too must not write.
SAFE_METHODS = frozenset({'GET', 'HEAD', 'OPTIONS', 'TRACE'})

#: The health check (``zeostore.health_path``) answers these.
HEALTH_METHODS = frozenset({'GET', 'HEAD'})

# -- shared by every attempt of one request (pyramid_retry keeps the
# environ): --------------------------------------------------------------

#: the ``time.monotonic()`` deadline of the bounded wait for ZEO
DEADLINE = 'zeostore.deadline'
#: an attempt failed for want of a server: later ones do not wait again
UNAVAILABLE = 'zeostore.unavailable'
#: opening the databases failed in this request: do not wait again
OPEN_FAILED = 'zeostore.open_failed'
#: this attempt runs alone on this host and syncs before it reads
EXCLUSIVE = 'zeostore.exclusive'
#: the queue file of this request's hot key (a hot spot)
HOT = 'zeostore.hot'
#: called when the request escalates to an exclusive attempt
ESCALATED = 'zeostore.escalated'
#: an earlier attempt of this safe request wrote: go the committing way
WROTE = 'zeostore.safe_method_wrote'
#: the request's :class:`~pyramid_zeostore.metrics.RequestMetrics`
METRICS = 'zeostore.metrics'

#: the router's tweens handle this request (set by the read tween):
#: ``request.tm`` is then an explicit manager of its own; outside them
#: (``prepare``, ``bootstrap``, scripts, tests) the thread's
#: ``transaction.manager`` (:func:`pyramid_zeostore.request.manager_hook`)
ROUTED = 'zeostore.routed'

# -- one attempt: ---------------------------------------------------------

#: this attempt is a fast read: the thread's read slot
#: (:class:`~pyramid_zeostore.connection.ReadSlot`)
FAST = 'zeostore.fast_read'

# -- set by :class:`~pyramid_zeostore.PersistentApplicationFinder`: -------

#: call it to abort and close the finder's connection
CLOSER = 'zeostore.closer'
#: the finder's connection
CONNECTION = 'zeostore.connection'

# -- the read-your-writes cookie: -----------------------------------------

#: set on the answer to a write; a fast read that carries it syncs first
SYNC_COOKIE = 'zeostore_sync'
SYNC_SECONDS = 10
