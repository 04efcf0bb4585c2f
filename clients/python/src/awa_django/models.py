"""Unmanaged, read-only models over awa's tables.

Django never creates, alters or writes these tables: every change goes through
awa's SQL API (see ``awa_django.ops``).  ``db_table`` quotes schema and table
separately so that Django emits ``"awa"."jobs"``.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models

from awa_client.states import STATES

# The permission that lets a staff user act (retry, cancel, pause, ...).
OPERATE_PERMISSION = "awa_django.operate_queue"


class Job(models.Model):
    id = models.BigIntegerField(primary_key=True)
    kind = models.TextField()
    queue = models.TextField()
    args = models.JSONField()
    state = models.CharField(max_length=20, choices=[(s, s) for s in STATES])
    priority = models.SmallIntegerField()
    attempt = models.SmallIntegerField()
    max_attempts = models.SmallIntegerField()
    run_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(null=True)
    deadline_at = models.DateTimeField(null=True)
    attempted_at = models.DateTimeField(null=True)
    finalized_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField()
    errors = ArrayField(models.JSONField())
    metadata = models.JSONField()
    tags = ArrayField(models.TextField())
    run_lease = models.BigIntegerField()
    progress = models.JSONField(null=True)
    claimed_by = models.TextField(null=True)

    class Meta:
        managed = False
        db_table = '"awa"."jobs"'
        ordering = ["-id"]
        default_permissions = ("view",)
        permissions = [("operate_queue",
                        "Can operate awa: retry, cancel, discard jobs; pause, resume, drain queues and schedules")]

    def __str__(self):
        return "job %s (%s)" % (self.id, self.kind)


class Queue(models.Model):
    """awa.queue_meta; the admin shows awa_queue_stats() for it (the dashboard)."""

    queue = models.TextField(primary_key=True)
    paused = models.BooleanField()
    paused_at = models.DateTimeField(null=True)
    paused_by = models.TextField(null=True)

    class Meta:
        managed = False
        db_table = '"awa"."queue_meta"'
        verbose_name = "queue"
        verbose_name_plural = "queues (dashboard)"
        default_permissions = ("view",)

    def __str__(self):
        return self.queue


class CronJob(models.Model):
    """awa.cron_jobs: periodic jobs (awa_schedule)."""

    name = models.TextField(primary_key=True)
    cron = models.TextField()
    kind = models.TextField()
    args = models.JSONField()
    queue = models.TextField()
    timezone = models.TextField()
    priority = models.SmallIntegerField()
    max_attempts = models.SmallIntegerField()
    tags = ArrayField(models.TextField())
    metadata = models.JSONField()
    missed_fire_policy = models.TextField()
    paused = models.BooleanField()
    next_fire_at = models.DateTimeField(null=True)
    last_fired_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = '"awa"."cron_jobs"'
        ordering = ["name"]
        verbose_name = "schedule"
        verbose_name_plural = "schedules"
        default_permissions = ("view",)

    def __str__(self):
        return self.name
