from __future__ import annotations

from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"

    def ready(self) -> None:
        from analytics.selectors import session_query_stats
        from sessions.selectors import session_query_stats_register

        # Sessions may not import queries (queries depends on sessions); the per-session
        # query numbers reach session metrics through this reader instead.
        session_query_stats_register(session_query_stats)
