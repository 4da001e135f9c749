"""The browser chat edge: the page at ``/``, its sign-in, its JSON API, and the status views.

The page (``views``) is static HTML plus the ES modules under ``static/chat/``: questions
and answers go through the ``/ws/chat/`` websocket (``queries.consumers``), conversations,
feedback and uploads through the page's own JSON endpoints under ``/chat/api/`` (``api``),
authenticated by the Django login session (CSRF-checked) and kept out of the public
OpenAPI schema. ``status_views`` serves ``/api/v1/health``, ``status`` and ``usage``.

An edge: each view parses input, calls one service or selector of the apps below, and
renders. ``selectors`` holds the reads that combine two apps (sessions and queries).
"""
