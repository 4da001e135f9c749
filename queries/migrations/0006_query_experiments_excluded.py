from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("queries", "0005_page_and_vector_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="query",
            name="experiments_excluded",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
