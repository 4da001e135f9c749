from django.db import migrations, models
from django.utils import timezone


class Migration(migrations.Migration):
    """Memory's incremental read goes by indexed_at (written at each write) instead of
    completed_at. Existing rows get the migration's time: a process started after it
    reads them cold, whatever their stamp."""

    dependencies = [
        ("queries", "0006_query_experiments_excluded"),
    ]

    operations = [
        migrations.AddField(
            model_name="query",
            name="indexed_at",
            field=models.DateTimeField(default=timezone.now),
        ),
        migrations.RemoveIndex(model_name="query", name="queries_owner_user_vectors"),
        migrations.AddIndex(
            model_name="query",
            index=models.Index(
                fields=["owner", "user_id", "embedding_model", "status", "indexed_at"],
                name="queries_owner_user_memory",
            ),
        ),
    ]
