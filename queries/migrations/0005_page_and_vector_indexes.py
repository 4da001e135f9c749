from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("queries", "0004_run_heartbeat"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(model_name="query", name="queries_owner_session"),
        migrations.RemoveIndex(model_name="query", name="queries_owner_user"),
        migrations.RemoveIndex(model_name="query", name="queries_owner_timestamp"),
        migrations.AddIndex(
            model_name="query",
            index=models.Index(
                fields=["owner", "session_id", "-timestamp", "-id"],
                name="queries_owner_session_page",
            ),
        ),
        migrations.AddIndex(
            model_name="query",
            index=models.Index(
                fields=["owner", "user_id", "-timestamp", "-id"], name="queries_owner_user_page"
            ),
        ),
        migrations.AddIndex(
            model_name="query",
            index=models.Index(fields=["owner", "-timestamp", "-id"], name="queries_owner_page"),
        ),
        migrations.AddIndex(
            model_name="query",
            index=models.Index(fields=["-timestamp", "-id"], name="queries_page"),
        ),
        migrations.AddIndex(
            model_name="query",
            index=models.Index(
                fields=["owner", "user_id", "embedding_model", "status", "completed_at"],
                name="queries_owner_user_vectors",
            ),
        ),
    ]
