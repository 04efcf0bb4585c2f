from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        # awa must be in shared_preload_libraries; creating it needs a superuser
        # (or have your DBA run CREATE EXTENSION awa once and drop this operation).
        migrations.RunSQL("CREATE EXTENSION IF NOT EXISTS awa",
                          reverse_sql="DROP EXTENSION IF EXISTS awa"),
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("item", models.CharField(max_length=100)),
                ("quantity", models.PositiveIntegerField(default=1)),
                ("status", models.CharField(default="new", max_length=20)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
