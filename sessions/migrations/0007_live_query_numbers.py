"""Open sessions' query numbers, counted once from their queries.

From here on the run counts each query into its session as it stores it
(``sessions.services.session_query_record``); until now open sessions were counted at
every read and stored only when they ended.
"""

from django.db import migrations
from django.db.models import Count, Min


def count_open_sessions(apps, schema_editor):
    Session = apps.get_model("chat_sessions", "Session")
    Query = apps.get_model("queries", "Query")
    for session in Session.objects.filter(end_t=None).only("owner_id", "session_id"):
        numbers = Query.objects.filter(
            owner_id=session.owner_id, session_id=session.session_id
        ).aggregate(n=Count("id"), first=Min("timestamp"))
        if numbers["n"]:
            Session.objects.filter(pk=session.pk).update(
                query_count=numbers["n"], first_query_at=numbers["first"]
            )


class Migration(migrations.Migration):
    dependencies = [
        ("chat_sessions", "0006_experiment_key_per_owner"),
        ("queries", "0006_query_experiments_excluded"),
    ]

    operations = [migrations.RunPython(count_open_sessions, migrations.RunPython.noop)]
