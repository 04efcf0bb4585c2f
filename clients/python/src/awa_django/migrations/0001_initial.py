# The models are unmanaged (managed=False): this migration creates no table, only what Django needs
# for content types and the operate_queue permission.  awa's tables come from CREATE EXTENSION awa.

import django.contrib.postgres.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='CronJob',
            fields=[
                ('name', models.TextField(primary_key=True, serialize=False)),
                ('cron', models.TextField()),
                ('kind', models.TextField()),
                ('args', models.JSONField()),
                ('queue', models.TextField()),
                ('timezone', models.TextField()),
                ('priority', models.SmallIntegerField()),
                ('max_attempts', models.SmallIntegerField()),
                ('tags', django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), size=None)),
                ('metadata', models.JSONField()),
                ('missed_fire_policy', models.TextField()),
                ('paused', models.BooleanField()),
                ('next_fire_at', models.DateTimeField(null=True)),
                ('last_fired_at', models.DateTimeField(null=True)),
                ('created_at', models.DateTimeField()),
                ('updated_at', models.DateTimeField()),
            ],
            options={
                'verbose_name': 'schedule',
                'verbose_name_plural': 'schedules',
                'db_table': '"awa"."cron_jobs"',
                'ordering': ['name'],
                'managed': False,
                'default_permissions': ('view',),
            },
        ),
        migrations.CreateModel(
            name='Job',
            fields=[
                ('id', models.BigIntegerField(primary_key=True, serialize=False)),
                ('kind', models.TextField()),
                ('queue', models.TextField()),
                ('args', models.JSONField()),
                ('state', models.CharField(choices=[('scheduled', 'scheduled'), ('available', 'available'), ('running', 'running'), ('completed', 'completed'), ('retryable', 'retryable'), ('failed', 'failed'), ('cancelled', 'cancelled'), ('waiting_external', 'waiting_external')], max_length=20)),
                ('priority', models.SmallIntegerField()),
                ('attempt', models.SmallIntegerField()),
                ('max_attempts', models.SmallIntegerField()),
                ('run_at', models.DateTimeField()),
                ('heartbeat_at', models.DateTimeField(null=True)),
                ('deadline_at', models.DateTimeField(null=True)),
                ('attempted_at', models.DateTimeField(null=True)),
                ('finalized_at', models.DateTimeField(null=True)),
                ('created_at', models.DateTimeField()),
                ('errors', django.contrib.postgres.fields.ArrayField(base_field=models.JSONField(), size=None)),
                ('metadata', models.JSONField()),
                ('tags', django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), size=None)),
                ('run_lease', models.BigIntegerField()),
                ('progress', models.JSONField(null=True)),
                ('claimed_by', models.TextField(null=True)),
            ],
            options={
                'db_table': '"awa"."jobs"',
                'ordering': ['-id'],
                'permissions': [('operate_queue', 'Can operate awa: retry, cancel, discard jobs; pause, resume, drain queues and schedules')],
                'managed': False,
                'default_permissions': ('view',),
            },
        ),
        migrations.CreateModel(
            name='Queue',
            fields=[
                ('queue', models.TextField(primary_key=True, serialize=False)),
                ('paused', models.BooleanField()),
                ('paused_at', models.DateTimeField(null=True)),
                ('paused_by', models.TextField(null=True)),
            ],
            options={
                'verbose_name': 'queue',
                'verbose_name_plural': 'queues (dashboard)',
                'db_table': '"awa"."queue_meta"',
                'managed': False,
                'default_permissions': ('view',),
            },
        ),
    ]
