"""The composition root: the URL map and the ASGI application that put the apps together.

Nothing imports it but Django (``ROOT_URLCONF``, ``ASGI_APPLICATION``) and the servers
(``manage.py serve``, the tests' uvicorn): it sits above every app and edge.
"""
