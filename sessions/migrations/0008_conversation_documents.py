from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat_sessions", "0007_live_query_numbers"),
    ]

    operations = [
        migrations.AddField(
            model_name="session",
            name="document_ids",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
