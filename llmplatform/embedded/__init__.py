"""The embedded SecantusDB: who starts it, how processes share it, who stops it.

With ``MONGODB_URI`` unset the project uses an embedded SecantusDB server, run as its
own process (``python -m llmplatform.embedded.launcher``: GPL, never imported by
Django), one per data directory (``var/mongo``).

The Django side (imported by settings, manage.py, ``serve``, Celery and the tests):

- ``attach``: points Django at the server; which commands need it.
- ``server``: the shared server of a data directory (attach, status, stop) and
  ``spawn_server``, which starts a launcher process and waits until it listens.
- ``leases``: the data directory's lock and its leases, one per process using the server.

The server side (run only in the launcher process; each imports ``secantus`` itself):

- ``launcher``: the process's ``main``: applies the patches, serves, stops when unused.
- ``patches``: compatibility patches for what django-mongodb-backend sends.
- ``ordered_window``: pages (``$sort`` + ``$limit``) read off an index.
- ``memory``: bounding glibc's malloc, and memory reports on demand.

**Starting is explicit.** Importing settings starts nothing: they say
``MONGODB_EMBEDDED = True`` and point ``DATABASES`` at ``NOT_ATTACHED_URI``, a host that
cannot resolve. A process that needs the database calls ``attach_embedded_database()``
before its first query; that leases the server (starting it if none runs) and puts its
URI into ``settings.DATABASES`` and ``settings.MONGODB_URI``. The callers:

- ``manage.py``, for every command except the few in ``COMMANDS_WITHOUT_DATABASE``
  (``check``, ``help``, ``version``, ``collectstatic``...) and any ``--help``: a command
  added later works on the embedded default without being listed anywhere. (Django's
  model checks ask the server whether it supports search indexes; for the embedded
  default manage.py answers "no", true of SecantusDB, so ``check`` needs no server.)
- the ``serve`` command (``make run``);
- Celery worker, beat and ``celery shell`` (``import_modules`` in ``llmplatform/celery.py``);
- a script of your own: ``django.setup()`` then ``attach_embedded_database()``.

Child processes of an attached process (ASGI server workers, the runserver reloader's
child) inherit its URI through ``ATTACHED_URI_ENV`` and are covered by its lease. The
test suite does not share: ``tests/pytest_embedded_mongo.py`` starts a throw-away
in-memory server per run with ``spawn_server``.

**Sharing: a lock and one lease per process.** ``var/mongo/launcher.lock`` (``flock``)
serialises attaching and stopping. An attaching process, holding the lock, writes
``leases/<pid>.json`` (its pid and kernel start time, so a recycled pid does not count),
then reuses the server named by ``server.json`` if it is alive and answers, or starts
one and waits for it. It removes its lease when it exits (``atexit``; a forked child
never removes its parent's lease).

**Stopping: the server stops itself when its last user is gone.** No Django process
ever stops it. The launcher checks the leases every ``LEASE_CHECK_S``; once none is
held by a live process (the users exited, or crashed: dead pids are ignored and their
leases deleted) it takes the lock, checks again, stops, and removes ``server.json``
before it releases the lock. So an attach either finds a live server that has counted
its lease, or starts a new one after the old one has closed its files.

Way out: ``python -m llmplatform.embedded status`` lists the server and the processes
using it; ``... stop`` stops it now, even while processes still use it.
"""
