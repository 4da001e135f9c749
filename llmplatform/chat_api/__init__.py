"""The chat UI's own JSON endpoints (``/chat/api/...``): conversations, feedback, uploads.

Authenticated by the Django login session the chat page uses (CSRF-checked), kept out of
the public OpenAPI schema, and thin: each view calls one service or selector of the apps.
"""
