from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat_sessions", "0002_analytics_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="session",
            index=models.Index(fields=["end_t"], name="sessions_end_t"),
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(fields=["-start_t", "-id"], name="sessions_page"),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["received_at"], name="events_received"),
        ),
    ]
