"""awa_django, the operator's dashboard in Django's admin, under Django's test runner.

Run by test/integration/django_admin.sh on examples/django.  Django's test client
for every page and action (an operator, a read-only staff user, a staff user
with no awa permission at all), then a real browser (Debian's chromium +
chromedriver through python3-selenium, headless): log in, see a queue with a
failed job, retry it through the action and its confirmation page, check the
database.  Screenshots go to $AWA_ADMIN_OUTPUT (default: a temporary directory).
"""

import json
import os
import re
import shutil
import tempfile
import time

from django.contrib.auth.models import Permission, User
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.core.management import call_command
from django.db import connection
from django.test import TestCase, TransactionTestCase
from django.test.utils import CaptureQueriesContext

ADMIN = "/admin/awa_django/"
DASHBOARD = ADMIN + "queue/"
QUEUE_OP = DASHBOARD + "op/%s/"
JOBS = ADMIN + "job/"
SCHEDULES = ADMIN + "cronjob/"


def sql(query, params=()):
    with connection.cursor() as cur:
        cur.execute(query, list(params))
        if cur.description is None:
            return []
        return cur.fetchall()


def insert(kind, args=None, **kw):
    """awa_insert with named arguments: dicts are jsonb, lists text[]."""
    named, params = "", [kind, json.dumps(args or {})]
    for name, value in kw.items():
        if isinstance(value, dict):
            named += ", %s => %%s::jsonb" % name
            value = json.dumps(value)
        elif isinstance(value, list):
            named += ", %s => %%s::text[]" % name
        else:
            named += ", %s => %%s" % name
        params.append(value)
    return sql("SELECT id FROM awa_insert(%%s, %%s::jsonb%s)" % named, params)[0][0]


def make_failed(kind, queue, error="ValueError: boom"):
    job_id = insert(kind, {"n": 1}, queue=queue, max_attempts=1)
    lease = sql("SELECT run_lease FROM awa_claim(%s)", [queue])[0][0]
    assert sql("SELECT awa_fail(%s, %s, %s)", [job_id, lease, error])[0][0] == "failed"
    return job_id


def state(job_id):
    rows = sql("SELECT state::text FROM awa.jobs WHERE id = %s", [job_id])
    return rows[0][0] if rows else None


def queue_paused(queue):
    rows = sql("SELECT paused FROM awa.queue_meta WHERE queue = %s", [queue])
    return bool(rows and rows[0][0])


def schedule_paused(name):
    return sql("SELECT paused FROM awa.cron_jobs WHERE name = %s", [name])[0][0]


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def wipe_awa():
    sql("DELETE FROM awa.jobs")
    sql("DELETE FROM awa.queue_meta")
    sql("DELETE FROM awa.cron_jobs")


class AdminTestBase(TestCase):
    """A TestCase: every test's jobs vanish with its transaction."""

    @classmethod
    def setUpTestData(cls):
        cls.operator = User.objects.create_user("operator", password="pw", is_staff=True)
        perms = Permission.objects.filter(content_type__app_label="awa_django")
        cls.operator.user_permissions.add(*perms)          # view_* and operate_queue
        cls.viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
        cls.viewer.user_permissions.add(*perms.exclude(codename="operate_queue"))
        cls.outsider = User.objects.create_user("outsider", password="pw", is_staff=True)

    def setUp(self):
        wipe_awa()
        self.failed = make_failed("report.build", "reports", "Traceback (most recent call last):\n"
                                  "  File \"jobs.py\", line 3\nValueError: month missing")
        self.failed2 = make_failed("report.build", "reports")
        self.mail = [insert("mail.send", {"to": "u%d@example.com" % i}, queue="mail", tags=["signup"])
                     for i in range(3)]
        self.other = insert("img.resize", {"w": 100}, queue="media", metadata={"tenant": 7})
        sql("SELECT awa_schedule('nightly', '0 3 * * *', 'report.build', queue => 'reports')")
        sql("SELECT awa_schedule('hourly', '0 * * * *', 'mail.digest', queue => 'mail')")
        self.client.login(username="operator", password="pw")


class PageTests(AdminTestBase):
    def test_permission_is_defined(self):
        self.assertTrue(Permission.objects.filter(content_type__app_label="awa_django",
                                                  codename="operate_queue").exists())
        self.assertTrue(User.objects.get(username="operator").has_perm("awa_django.operate_queue"))
        self.assertFalse(User.objects.get(username="viewer").has_perm("awa_django.operate_queue"))

    def test_admin_index_lists_the_app(self):
        r = self.client.get("/admin/")
        self.assertContains(r, "awa job queue")
        self.assertContains(r, DASHBOARD)
        r = self.client.get(ADMIN)
        self.assertContains(r, "Schedules")

    def test_dashboard_one_row_per_queue_failed_highlighted(self):
        r = self.client.get(DASHBOARD)
        self.assertEqual(r.status_code, 200)
        stats = {row["queue"]: row for row in r.context["stats"]}
        self.assertEqual(set(stats), {"reports", "mail", "media"})
        self.assertEqual(stats["reports"]["failed"], 2)
        self.assertEqual(stats["mail"]["available"], 3)
        self.assertContains(r, 'awa-row-failed" data-queue="reports"')
        self.assertContains(r, "2 failed")
        self.assertContains(r, 'data-queue="mail"')
        self.assertContains(r, "Failed jobs by kind")
        self.assertContains(r, "report.build")
        # an operator sees the queue actions
        self.assertContains(r, "op/pause/?queue=mail")
        self.assertContains(r, "op/drain/?queue=mail")
        self.assertContains(r, "op/retry_failed/?queue=reports")
        self.assertContains(r, "op/discard_failed/?kind=report.build")

    def test_dashboard_shows_queue_limit(self):
        sql("SELECT awa_set_queue_limit('mail', 7)")
        r = self.client.get(DASHBOARD)
        self.assertContains(r, "of max 7")

    def test_dashboard_shows_queue_rate(self):
        sql("SELECT awa_set_queue_rate('mail', 2, '1 hour')")
        r = self.client.get(DASHBOARD)
        self.assertContains(r, "<th scope=\"col\">Rate</th>", html=False)
        # before any claim since the server started, the window is not counted yet
        self.assertRegex(r.content.decode(), r'awa-rate"><span class="awa-limit"[^>]*>(0 of )?2 per 1 h<')
        sql("SELECT count(*) FROM awa_claim('mail', 'w', 5, '1 min', '0')")
        r = self.client.get(DASHBOARD)
        self.assertContains(r, "2 of 2 per 1 h")
        self.assertContains(r, "full, the next slot opens at")
        sql("SELECT awa_set_queue_rate('mail', 20, '500 ms')")
        self.assertContains(self.client.get(DASHBOARD), "per 500 ms")

    def test_dashboard_shows_concurrency_keys(self):
        self.assertNotContains(self.client.get(DASHBOARD), 'id="awa-keys"')   # no keyed jobs: no section
        for _ in range(3):
            sql("SELECT awa_insert('sync', queue => 'mail', concurrency_key => 'tenant:7')")
        sql("SELECT awa_insert('sync', queue => 'mail', concurrency_key => 'doc:1')")
        sql("SELECT awa_set_key_limit('doc:%%', 1, ordered => true)")
        sql("SELECT count(*) FROM awa_claim('mail', 'w', 10, '1 min', '0')")
        r = self.client.get(DASHBOARD)
        self.assertContains(r, 'id="awa-keys"')
        html = r.content.decode()
        row = re.search(r'<tr class="[^"]*awa-row-paused" data-key="tenant:7">(.*?)</tr>', html, re.S)
        self.assertIsNotNone(row, "a key at its limit is marked")
        self.assertIn("<td>1</td><td>2</td>", row.group(1))        # 1 running, 2 waiting
        self.assertIn("at limit: 1", row.group(1))
        self.assertIn("1, in order", html)

    def test_dashboard_shows_paused(self):
        sql("SELECT awa_pause_queue('mail')")
        r = self.client.get(DASHBOARD)
        self.assertContains(r, "op/resume/?queue=mail")
        self.assertContains(r, "awa-row-paused")

    def test_dashboard_shows_a_queue_without_jobs_and_forgets_it(self):
        sql("SELECT awa_pause_queue('mial')")              # a typo: no job has this queue
        r = self.client.get(DASHBOARD)
        html = r.content.decode()
        row = html[html.index('data-queue="mial"'):]
        row = row[:row.index("</tr>")]
        self.assertIn("no jobs", row)
        self.assertIn("op/forget/?queue=mial", row)
        self.assertNotIn("no jobs", html[html.index('data-queue="mail"'):][:600])
        r = self.client.get(QUEUE_OP % "forget" + "?queue=mial")
        self.assertContains(r, "Forget the settings of queue mial?")
        r = self.client.post(QUEUE_OP % "forget", {"queue": "mial", "post": "yes"}, follow=True)
        self.assertIn("Settings of queue mial forgotten", messages_of(r))
        self.assertFalse(sql("SELECT count(*) FROM awa.queue_meta WHERE queue = 'mial'")[0][0])

    def test_job_list_newest_first(self):
        r = self.client.get(JOBS)
        self.assertEqual(r.status_code, 200)
        ids = [j.id for j in r.context["cl"].result_list]
        self.assertEqual(ids, sorted(ids, reverse=True))
        self.assertEqual(ids[0], self.other)
        self.assertContains(r, "Retry selected jobs")          # the operator's actions

    def test_job_list_filters_and_search(self):
        def ids(query):
            r = self.client.get(JOBS + query)
            self.assertEqual(r.status_code, 200, query)
            return {j.id for j in r.context["cl"].result_list}
        self.assertEqual(ids("?state=failed"), {self.failed, self.failed2})
        self.assertEqual(ids("?queue=mail"), set(self.mail))
        self.assertEqual(ids("?kind=img.resize"), {self.other})
        self.assertEqual(ids("?tag=signup"), set(self.mail))
        self.assertEqual(ids("?tag=nope"), set())
        self.assertEqual(ids("?state=available&queue=mail&kind=mail.send"), set(self.mail))
        self.assertEqual(ids("?q=%d" % self.other), {self.other})
        self.assertEqual(ids("?q=%%23%d" % self.other), {self.other})     # "#123"
        self.assertEqual(ids("?q=not-an-id"), set())

    def test_job_list_keyset_pages_without_count(self):
        more = [insert("bulk.thing", {"i": i}, queue="bulk") for i in range(60)]
        with CaptureQueriesContext(connection) as queries:
            r = self.client.get(JOBS + "?queue=bulk")
        self.assertEqual(r.status_code, 200)
        for q in queries.captured_queries:
            self.assertNotIn("COUNT(", q["sql"].upper(), q["sql"])
        page1 = [j.id for j in r.context["cl"].result_list]
        self.assertEqual(page1, sorted(more, reverse=True)[:50])
        self.assertContains(r, 'id="awa-older"')
        older = r.context["cl"].older_url
        self.assertIn("id__lt=%d" % page1[-1], older)
        r = self.client.get(JOBS + older)
        page2 = [j.id for j in r.context["cl"].result_list]
        self.assertEqual(page2, sorted(more, reverse=True)[50:])
        self.assertNotContains(r, 'id="awa-older"')
        self.assertContains(r, 'id="awa-newest"')

    def test_job_page_is_readable(self):
        sql("SELECT awa_retry(%s)", [self.failed])      # keeps errors; progress set below
        lease = sql("SELECT run_lease FROM awa_claim('reports')")[0][0]
        sql("SELECT awa_progress(%s, %s, '{\"done\": 3, \"of\": 10}')", [self.failed, lease])
        r = self.client.get(JOBS + "%d/change/" % self.failed)
        self.assertEqual(r.status_code, 200)
        html = r.content.decode()
        self.assertIn('<pre class="awa-json">{\n  &quot;n&quot;: 1\n}</pre>', html)          # args
        self.assertIn('&quot;done&quot;: 3', html)                                            # progress
        self.assertIn("awa-errors", html)                                                     # error history
        self.assertIn("ValueError: month missing", html)
        self.assertIn("report.build", html)
        self.assertIn('id="awa-job-cancel"', html)          # running: can be cancelled
        self.assertNotIn('id="awa-job-retry"', html)
        self.assertRegex(html, r"(?i)lease \(renewed by heartbeats\)(.|\n)*?00:05:00")   # the claim's 5 min lease
        r = self.client.get(JOBS + "%d/change/" % self.other)
        self.assertContains(r, "&quot;tenant&quot;: 7")   # metadata
        self.assertContains(r, "no errors")
        timed = insert("img.resize", {"w": 1}, queue="media", timeout="90 seconds")
        r = self.client.get(JOBS + "%d/change/" % timed)
        self.assertRegex(r.content.decode(), r"(?i)timeout \(hard limit of an attempt\)(.|\n)*?00:01:30")
        r = self.client.get(JOBS + "%d/change/" % self.failed2)
        self.assertContains(r, 'id="awa-job-retry"')

    def test_job_page_shows_callback_and_result(self):
        job_id = insert("pay.charge", {"order": 1}, queue="pay")
        lease = sql("SELECT run_lease FROM awa_claim('pay')")[0][0]
        r = self.client.get(JOBS + "%d/change/" % job_id)
        self.assertContains(r, "none registered")
        cb = sql("SELECT awa_register_callback(%s, %s, '2 hours')::text", [job_id, lease])[0][0]
        r = self.client.get(JOBS + "%d/change/" % job_id)
        self.assertContains(r, "registered, not parked yet")
        sql("SELECT awa_wait_external(%s, %s)", [job_id, lease])
        r = self.client.get(JOBS + "%d/change/" % job_id)
        self.assertContains(r, "waiting for its callback")
        self.assertNotContains(r, cb)                     # the capability is not shown
        self.assertContains(r, "02:00:00")
        sql("SELECT awa_complete_external(%s::uuid, '{\"receipt\": \"r-77\"}')", [cb])
        r = self.client.get(JOBS + "%d/change/" % job_id)
        self.assertContains(r, "no longer waited for")
        self.assertContains(r, "&quot;receipt&quot;: &quot;r-77&quot;")   # the result
        other = insert("pay.charge", {"order": 2}, queue="pay")
        lease = sql("SELECT run_lease FROM awa_claim('pay')")[0][0]
        cb = sql("SELECT awa_register_callback(%s, %s, '1 hour')::text", [other, lease])[0][0]
        sql("SELECT awa_wait_external(%s, %s)", [other, lease])
        sql("SELECT awa_fail_external(%s::uuid, 'declined', '{\"code\": 402}')", [cb])
        r = self.client.get(JOBS + "%d/change/" % other)
        self.assertContains(r, "&quot;code&quot;: 402")   # the callback's payload

    def test_job_page_shows_when_a_job_parked(self):
        job_id = insert("pay.charge", {"order": 3}, queue="pay")
        lease = sql("SELECT run_lease FROM awa_claim('pay')")[0][0]
        sql("SELECT awa_register_callback(%s, %s, '30 minutes')", [job_id, lease])
        sql("SELECT awa_wait_external(%s, %s)", [job_id, lease])
        parked_at = sql("SELECT heartbeat_at FROM awa.jobs WHERE id = %s", [job_id])[0][0]
        r = self.client.get(JOBS + "%d/change/" % job_id)
        self.assertContains(r, '<span id="awa-parked-since">parked since %s</span>' % parked_at)
        self.assertContains(r, "00:30:00")   # callback_timeout

    def test_job_page_and_group_page(self):
        parts = [insert("etl.part", {"n": n}, queue="etl", group_id="nightly-7") for n in range(3)]
        lone = insert("etl.part", {"n": 9}, queue="etl")
        r = self.client.get(JOBS + "%d/change/" % lone)
        self.assertNotContains(r, 'id="awa-job-group"')
        self.assertNotContains(r, 'id="awa-group-jobs"')
        r = self.client.get(JOBS + "%d/change/" % parts[0])
        self.assertContains(r, 'id="awa-job-group" href="%s?group=nightly-7">nightly-7</a>' % JOBS)
        self.assertContains(r, "3 available of 3 (3 unfinished); finish callback: none registered")
        self.assertContains(r, 'id="awa-group-jobs"')
        sql("SELECT awa_group_on_finish('nightly-7', 'etl.report')")
        done = sql("SELECT id, run_lease FROM awa_claim('etl', batch => 3)")
        sql("SELECT awa_complete(%s, %s)", done[0])
        r = self.client.get(JOBS + "%d/change/" % parts[1])
        self.assertContains(r, "2 running, 1 completed of 3 (2 unfinished); "
                               "finish callback: etl.report, waiting for the unfinished jobs")
        # the group's page: its jobs only, and its counts
        r = self.client.get(JOBS + "?group=nightly-7")
        self.assertEqual(sorted(j.id for j in r.context["cl"].result_list), sorted(parts))
        self.assertContains(r, 'id="awa-group-stats"')
        self.assertContains(r, '<td data-count="unfinished">2</td>')
        self.assertContains(r, "etl.report, enqueued once every job of the group has finished")
        for job_id, lease in done[1:]:
            sql("SELECT awa_fail(%s, %s, 'no', terminal => true)", [job_id, lease])
        callback = sql("SELECT callback_job_id FROM awa_group_stats('nightly-7')")[0][0]
        self.assertIsNotNone(callback)
        r = self.client.get(JOBS + "?group=nightly-7")
        self.assertContains(r, '<td data-count="unfinished">0</td>')
        self.assertContains(r, 'href="%s%d/change/">job %d</a>' % (JOBS, callback, callback))
        # an id awa would refuse: no jobs, no error
        r = self.client.get(JOBS + "?group=" + "x" * 201)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(list(r.context["cl"].result_list), [])
        self.assertContains(r, "not a group id awa takes")

    def test_job_page_shows_dependencies(self):
        parent = insert("etl.extract", {"day": 1}, queue="etl")
        child = sql("SELECT id FROM awa_insert('etl.load', queue => 'etl', after => ARRAY[%s]::bigint[],"
                    " on_parent_failure => 'wait')", [parent])[0][0]
        r = self.client.get(JOBS + "%d/change/" % child)
        self.assertContains(r, 'id="awa-job-parents"')
        self.assertNotContains(r, 'id="awa-job-children"')
        self.assertContains(r, 'href="%s%d/change/"' % (JOBS, parent))
        r = self.client.get(JOBS + "%d/change/" % parent)
        self.assertContains(r, 'id="awa-job-children"')
        self.assertContains(r, "1 parent(s)")               # the child still waits for it
        self.assertContains(r, "wait")
        lease = sql("SELECT run_lease FROM awa_claim('etl')")[0][0]
        sql("SELECT awa_complete(%s, %s, '{\"rows\": 12}')", [parent, lease])
        r = self.client.get(JOBS + "%d/change/" % child)
        self.assertContains(r, "&quot;rows&quot;: 12")      # the parent's result
        self.assertEqual(state(child), "available")
        r = self.client.get(JOBS + "%d/change/" % self.other)
        self.assertNotContains(r, 'id="awa-job-dependencies"')  # a job without any: no section

    def test_job_page_is_read_only(self):
        r = self.client.post(JOBS + "%d/change/" % self.other, {"kind": "evil"})
        self.assertEqual(r.status_code, 403)
        self.assertEqual(self.client.get(JOBS + "add/").status_code, 403)
        self.assertEqual(self.client.post(JOBS + "%d/delete/" % self.other).status_code, 403)
        self.assertEqual(sql("SELECT kind FROM awa.jobs WHERE id = %s", [self.other])[0][0], "img.resize")

    def test_schedule_pages(self):
        r = self.client.get(SCHEDULES)
        self.assertContains(r, "nightly")
        self.assertContains(r, "hourly")
        self.assertContains(r, "Pause selected schedules")
        r = self.client.get(SCHEDULES + "nightly/change/")
        self.assertContains(r, "0 3 * * *")
        self.assertContains(r, 'id="awa-schedule-pause"')

    def test_unknown_job_is_404(self):
        self.assertEqual(self.client.get(JOBS + "999999999/retry/").status_code, 404)


class ActionTests(AdminTestBase):
    def confirm_then_do(self, url, data=None, expect_in_page=None):
        """GET the confirmation page (nothing changes), then POST it; returns the followed response."""
        r = self.client.get(url, data or {})
        self.assertEqual(r.status_code, 200)
        self.assertTemplateUsed(r, "admin/awa_django/confirm.html")
        if expect_in_page:
            self.assertContains(r, expect_in_page)
        hidden = dict(r.context["hidden"])
        return self.client.post(url, hidden, follow=True)

    def test_retry_one_job(self):
        url = JOBS + "%d/retry/" % self.failed
        r = self.client.get(url)
        self.assertContains(r, "Retry job %d?" % self.failed)
        self.assertEqual(state(self.failed), "failed")          # asking changed nothing
        r = self.client.post(url, {"post": "yes"}, follow=True)
        self.assertEqual(state(self.failed), "available")
        self.assertIn("1 job retried", messages_of(r))

    def test_bulk_retry_leaves_a_job_whose_unique_key_is_held(self):
        old = insert("dedup", {"k": 1}, queue="uq", unique_by_args=True, max_attempts=1)
        lease = sql("SELECT run_lease FROM awa_claim('uq')")[0][0]
        sql("SELECT awa_fail(%s, %s, 'boom')", [old, lease])
        holder = insert("dedup", {"k": 1}, queue="uq", unique_by_args=True)   # takes the key
        post = {"action": "retry_selected", "post": "yes", "_selected_action": [old, self.failed]}
        r = self.client.post(JOBS, post, follow=True)
        self.assertEqual(r.status_code, 200)
        self.assertEqual((state(old), state(self.failed), state(holder)), ("failed", "available", "available"))
        self.assertIn("1 job retried", messages_of(r))
        self.assertIn("1 job left failed: another job holds its unique key (%d)" % old, messages_of(r))

    def test_cancel_one_job(self):
        r = self.confirm_then_do(JOBS + "%d/cancel/" % self.other, expect_in_page="Cancel job")
        self.assertEqual(state(self.other), "cancelled")
        self.assertIn("1 job cancelled", messages_of(r))
        r = self.client.post(JOBS + "%d/cancel/" % self.other, {"post": "yes"}, follow=True)
        self.assertIn("0 jobs cancelled", messages_of(r))
        self.assertIn("1 job left alone (already finished)", messages_of(r))

    def test_bulk_retry_action_confirms_first(self):
        data = {"action": "retry_selected", "_selected_action": [self.failed, self.failed2, self.mail[0]],
                "index": 0}
        r = self.client.post(JOBS, data)
        self.assertEqual(r.status_code, 200)
        self.assertTemplateUsed(r, "admin/awa_django/confirm.html")
        self.assertContains(r, "Retry 3 jobs?")
        self.assertEqual(state(self.failed), "failed")
        hidden = r.context["hidden"]
        post = {"action": "retry_selected", "post": "yes",
                "_selected_action": [v for k, v in hidden if k == "_selected_action"]}
        r = self.client.post(JOBS, post, follow=True)
        self.assertEqual((state(self.failed), state(self.failed2)), ("available", "available"))
        self.assertIn("2 jobs retried", messages_of(r))
        self.assertIn("1 job left alone (not failed, cancelled or waiting_external)", messages_of(r))

    def test_bulk_cancel_action(self):
        r = self.client.post(JOBS, {"action": "cancel_selected", "_selected_action": self.mail, "index": 0})
        self.assertContains(r, "Cancel 3 jobs?")
        self.assertEqual(state(self.mail[0]), "available")
        r = self.client.post(JOBS, {"action": "cancel_selected", "post": "yes", "_selected_action": self.mail},
                             follow=True)
        self.assertEqual({state(j) for j in self.mail}, {"cancelled"})
        self.assertIn("3 jobs cancelled", messages_of(r))

    def test_retry_failed_by_queue(self):
        make_failed("other.kind", "elsewhere")
        r = self.confirm_then_do(DASHBOARD + "op/retry_failed/", {"queue": "reports"},
                                 expect_in_page="2 failed jobs in queue reports will")
        self.assertIn("2 failed jobs retried", messages_of(r))
        self.assertEqual(state(self.failed), "available")
        self.assertEqual(sql("SELECT count(*) FROM awa.jobs WHERE state = 'failed'")[0][0], 1)

    def test_retry_failed_by_kind(self):
        other = make_failed("other.kind", "reports")
        r = self.confirm_then_do(DASHBOARD + "op/retry_failed/", {"kind": "other.kind"},
                                 expect_in_page="1 failed job of kind other.kind will")
        self.assertIn("1 failed job retried", messages_of(r))
        self.assertEqual((state(other), state(self.failed)), ("available", "failed"))

    def test_retry_failed_needs_a_filter(self):
        r = self.client.get(DASHBOARD + "op/retry_failed/", follow=True)
        self.assertIn("Name a queue or a kind.", messages_of(r))

    def test_discard_failed(self):
        r = self.confirm_then_do(DASHBOARD + "op/discard_failed/", {"kind": "report.build"},
                                 expect_in_page="Deletes 2 failed jobs of kind report.build")
        self.assertIn("2 failed jobs discarded", messages_of(r))
        self.assertIsNone(state(self.failed))
        self.assertIsNone(state(self.failed2))
        self.assertEqual(state(self.other), "available")

    def test_pause_resume_queue(self):
        r = self.confirm_then_do(DASHBOARD + "op/pause/", {"queue": "mail"}, expect_in_page="Pause queue mail?")
        self.assertIn("Queue mail paused", messages_of(r))
        self.assertTrue(queue_paused("mail"))
        self.assertEqual(sql("SELECT paused_by FROM awa.queue_meta WHERE queue = 'mail'")[0][0], "operator")
        self.assertEqual(sql("SELECT count(*) FROM awa_claim('mail')")[0][0], 0)     # really paused
        r = self.client.post(DASHBOARD + "op/pause/", {"queue": "mail", "post": "yes"}, follow=True)
        self.assertIn("Queue mail was already paused", messages_of(r))
        r = self.confirm_then_do(DASHBOARD + "op/resume/", {"queue": "mail"}, expect_in_page="Resume queue mail?")
        self.assertIn("Queue mail resumed", messages_of(r))
        self.assertFalse(queue_paused("mail"))

    def test_drain_queue(self):
        r = self.confirm_then_do(DASHBOARD + "op/drain/", {"queue": "mail"},
                                 expect_in_page="Cancels 3 jobs of queue mail that wait")
        self.assertIn("Queue mail drained: 3 jobs cancelled", messages_of(r))
        self.assertEqual({state(j) for j in self.mail}, {"cancelled"})
        self.assertEqual(state(self.other), "available")

    def test_pause_resume_schedule(self):
        r = self.confirm_then_do(SCHEDULES + "nightly/pause/", expect_in_page="Pause schedule nightly?")
        self.assertIn("1 schedule paused", messages_of(r))
        self.assertTrue(schedule_paused("nightly"))
        r = self.client.get(SCHEDULES + "nightly/change/")
        self.assertContains(r, 'id="awa-schedule-resume"')
        r = self.confirm_then_do(SCHEDULES + "nightly/resume/", expect_in_page="Resume schedule nightly?")
        self.assertIn("1 schedule resumed", messages_of(r))
        self.assertFalse(schedule_paused("nightly"))

    def test_bulk_schedule_actions(self):
        r = self.client.post(SCHEDULES, {"action": "pause_selected", "_selected_action": ["nightly", "hourly"],
                                         "index": 0})
        self.assertContains(r, "Pause 2 schedules?")
        self.assertFalse(schedule_paused("nightly"))
        r = self.client.post(SCHEDULES, {"action": "pause_selected", "post": "yes",
                                         "_selected_action": ["nightly", "hourly"]}, follow=True)
        self.assertIn("2 schedules paused", messages_of(r))
        self.assertTrue(schedule_paused("nightly") and schedule_paused("hourly"))
        r = self.client.post(SCHEDULES, {"action": "resume_selected", "post": "yes",
                                         "_selected_action": ["hourly"]}, follow=True)
        self.assertIn("1 schedule resumed", messages_of(r))
        self.assertEqual((schedule_paused("nightly"), schedule_paused("hourly")), (True, False))


class PermissionTests(AdminTestBase):
    OPS = [
        ("get", JOBS + "%(failed)d/retry/", {}),
        ("post", JOBS + "%(failed)d/retry/", {"post": "yes"}),
        ("post", JOBS + "%(other)d/cancel/", {"post": "yes"}),
        ("post", DASHBOARD + "op/pause/", {"queue": "mail", "post": "yes"}),
        ("get", DASHBOARD + "op/pause/", {"queue": "mail"}),
        ("post", DASHBOARD + "op/resume/", {"queue": "mail", "post": "yes"}),
        ("post", DASHBOARD + "op/drain/", {"queue": "mail", "post": "yes"}),
        ("post", DASHBOARD + "op/retry_failed/", {"queue": "reports", "post": "yes"}),
        ("post", DASHBOARD + "op/discard_failed/", {"kind": "report.build", "post": "yes"}),
        ("post", SCHEDULES + "nightly/pause/", {"post": "yes"}),
        ("post", SCHEDULES + "nightly/resume/", {"post": "yes"}),
    ]

    def snapshot(self):
        return (sql("SELECT id, state::text FROM awa.jobs ORDER BY id"),
                sql("SELECT queue, paused FROM awa.queue_meta ORDER BY queue"),
                sql("SELECT name, paused FROM awa.cron_jobs ORDER BY name"))

    def test_viewer_reads_but_cannot_act(self):
        self.client.logout()
        self.assertTrue(self.client.login(username="viewer", password="pw"))
        r = self.client.get(DASHBOARD)
        self.assertEqual(r.status_code, 200)
        self.assertContains(r, "2 failed")
        self.assertNotContains(r, "op/pause/")
        self.assertNotContains(r, "op/retry_failed/")
        r = self.client.get(JOBS)
        self.assertEqual(r.status_code, 200)
        self.assertNotContains(r, "Retry selected jobs")
        r = self.client.get(JOBS + "%d/change/" % self.failed)
        self.assertEqual(r.status_code, 200)
        self.assertNotContains(r, 'id="awa-job-retry"')
        r = self.client.get(SCHEDULES + "nightly/change/")
        self.assertNotContains(r, 'id="awa-schedule-pause"')
        self.assertNotContains(self.client.get(SCHEDULES), "Pause selected schedules")

        before = self.snapshot()
        ids = {"failed": self.failed, "other": self.other}
        for method, url, data in self.OPS:
            r = getattr(self.client, method)(url % ids, data)
            self.assertEqual(r.status_code, 403, "%s %s" % (method, url))
        # the changelist actions are not offered, so a crafted POST does nothing
        for action in ("retry_selected", "cancel_selected"):
            self.client.post(JOBS, {"action": action, "post": "yes", "index": 0,
                                    "_selected_action": [self.failed, self.other]})
        self.client.post(SCHEDULES, {"action": "pause_selected", "post": "yes", "index": 0,
                                     "_selected_action": ["nightly"]})
        self.assertEqual(self.snapshot(), before)

    def test_staff_without_awa_permissions(self):
        self.client.logout()
        self.assertTrue(self.client.login(username="outsider", password="pw"))
        self.assertEqual(self.client.get(DASHBOARD).status_code, 403)
        self.assertEqual(self.client.get(JOBS).status_code, 403)
        self.assertEqual(self.client.get(JOBS + "%d/change/" % self.failed).status_code, 403)
        self.assertEqual(self.client.post(DASHBOARD + "op/drain/", {"queue": "mail", "post": "yes"}).status_code,
                         403)
        self.assertEqual(state(self.mail[0]), "available")

    def test_anonymous_is_sent_to_login(self):
        self.client.logout()
        for url in (DASHBOARD, JOBS, DASHBOARD + "op/drain/?queue=mail"):
            r = self.client.get(url)
            self.assertEqual(r.status_code, 302, url)
            self.assertIn("/admin/login/", r["Location"])
        r = self.client.post(DASHBOARD + "op/drain/", {"queue": "mail", "post": "yes"})
        self.assertEqual(r.status_code, 302)
        self.assertEqual(state(self.mail[0]), "available")

    def test_createsuperuser_path(self):
        os.environ["DJANGO_SUPERUSER_PASSWORD"] = "s3cret-pw"
        try:
            call_command("createsuperuser", interactive=False, username="root", email="root@example.com",
                         verbosity=0)
        finally:
            del os.environ["DJANGO_SUPERUSER_PASSWORD"]
        self.client.logout()
        self.assertTrue(self.client.login(username="root", password="s3cret-pw"))
        self.assertContains(self.client.get(DASHBOARD), "op/pause/?queue=mail")


class StaleRunningTests(TransactionTestCase):
    """Commits, so that now() moves on and a claimed job's deadline really passes."""

    def setUp(self):
        wipe_awa()
        User.objects.create_superuser("root", "root@example.com", "pw")
        self.client.login(username="root", password="pw")

    def tearDown(self):
        wipe_awa()

    def test_stale_running_highlighted(self):
        stale = insert("img.resize", {}, queue="media")
        self.assertEqual(sql("SELECT id FROM awa_claim('media', lease => '0.2 s')"), [(stale,)])
        fresh = insert("img.resize", {}, queue="media")
        self.assertEqual(sql("SELECT id FROM awa_claim('media', lease => '1 hour')"), [(fresh,)])
        self.assertEqual((state(fresh), state(stale)), ("running", "running"))
        time.sleep(0.5)
        r = self.client.get(DASHBOARD)
        row = [q for q in r.context["stats"] if q["queue"] == "media"][0]
        self.assertEqual((row["running"], row["stale_running"]), (2, 1))
        self.assertContains(r, "awa-row-stale")
        self.assertContains(r, "1 stale")
        r = self.client.get(JOBS + "?state=running")
        self.assertContains(r, "running (stale)", count=1)
        r = self.client.get(JOBS + "%d/change/" % stale)
        self.assertContains(r, "running (stale)")


# -- the browser --------------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def output_dir():
    out = os.environ.get("AWA_ADMIN_OUTPUT") or tempfile.mkdtemp(prefix="awa-admin-output.")
    os.makedirs(out, exist_ok=True)
    return out


class BrowserTestBase(StaticLiveServerTestCase):
    """A headless Debian chromium for the browser tests (here and in awa_history_tests)."""

    @classmethod
    def setUpClass(cls):
        # No skipping: a machine without chromium fails this test.
        for exe in (CHROMIUM, CHROMEDRIVER):
            if not os.access(exe, os.X_OK):
                raise AssertionError("%s is missing: apt-get install chromium chromium-driver" % exe)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        super().setUpClass()
        cls.profile = tempfile.mkdtemp(prefix="awa-chromium.")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1500,900", "--user-data-dir=" + cls.profile):
            opts.add_argument(flag)
        try:
            cls.browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        except Exception:
            super().tearDownClass()
            raise
        cls.browser.implicitly_wait(5)
        cls.out = output_dir()

    @classmethod
    def tearDownClass(cls):
        cls.browser.quit()
        shutil.rmtree(cls.profile, ignore_errors=True)
        super().tearDownClass()

    def shot(self, name):
        path = os.path.join(self.out, name)
        self.assertTrue(self.browser.save_screenshot(path), path)
        self.assertGreater(os.path.getsize(path), 10000)
        print("screenshot: %s" % path)
        return path

    def log_in(self, next_url, user="admin", password="admin-pw"):
        from selenium.webdriver.common.by import By
        b = self.browser
        b.get(self.live_server_url + "/admin/login/?next=" + next_url)
        b.find_element(By.NAME, "username").send_keys(user)
        b.find_element(By.NAME, "password").send_keys(password)
        b.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


class BrowserTests(BrowserTestBase):
    """Headless Debian chromium: log in, find the failed job, retry it through the action."""

    def setUp(self):
        wipe_awa()
        User.objects.create_superuser("admin", "admin@example.com", "admin-pw")
        # a dashboard worth looking at
        for i in range(14):
            insert("mail.send", {"to": "user%d@example.com" % i}, queue="mail", tags=["signup"])
        for i in range(9):
            insert("mail.send", {"to": "done%d@example.com" % i}, queue="mail")
        done = sql("SELECT id, run_lease FROM awa_claim('mail', batch => 9)")
        sql("SELECT awa_complete_many(%s::bigint[], %s::bigint[])", [[d[0] for d in done], [d[1] for d in done]])
        self.failed = make_failed("report.build", "reports", "Traceback (most recent call last):\n"
                                  "  File \"reports/jobs.py\", line 12, in build\nKeyError: 'month'")
        insert("report.build", {"month": "2026-11"}, queue="reports")
        sql("SELECT awa_insert('report.build', '{}', queue => 'reports', run_at => now() + interval '1 hour')")
        for i in range(3):
            insert("img.resize", {"w": 100 * (i + 1)}, queue="media")
        sql("SELECT id FROM awa_claim('media', batch => 1, lease => '0.2 s')")
        sql("SELECT id FROM awa_claim('media', batch => 1, lease => '1 hour')")
        for i in range(5):
            insert("invoice.send", {"invoice": i}, queue="billing")
        sql("SELECT awa_pause_queue('billing', 'ops')")
        sql("SELECT awa_schedule('nightly-report', '0 3 * * *', 'report.build', queue => 'reports')")
        time.sleep(0.3)          # the 0.2 s lease has run out: a stale running job

    def tearDown(self):
        wipe_awa()

    def wait_for_text(self, css, text, timeout=15):
        """Wait until the element's text contains text, across page loads."""
        from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                                WebDriverException)
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        def has_text(d):
            try:
                return text in d.find_element(By.CSS_SELECTOR, css).text
            except WebDriverException as exc:
                # Chromium's form of a stale element: the page was replaced between finding
                # the element and reading its text
                if "does not belong to the document" in str(exc):
                    return False
                raise
        WebDriverWait(self.browser, timeout,
                      ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(has_text)

    def test_dashboard_fits_at_1400px_with_the_sidebar_open(self):
        """The queue table stays inside its box (scrolling there if need be), not off the page."""
        from selenium.webdriver.common.by import By
        b = self.browser
        b.set_window_size(1400, 900)
        self.addCleanup(b.set_window_size, 1500, 900)
        b.get(self.live_server_url + "/admin/login/?next=" + DASHBOARD)
        b.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'true')")
        b.find_element(By.NAME, "username").send_keys("admin")
        b.find_element(By.NAME, "password").send_keys("admin-pw")
        b.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        b.find_element(By.CSS_SELECTOR, '#awa-queues tr[data-queue="reports"]')
        self.assertTrue(b.find_element(By.ID, "nav-sidebar").is_displayed(), "the sidebar is open")
        self.assertEqual(b.execute_script("return window.innerWidth"), 1400)
        geometry = b.execute_script("""
            var doc = document.documentElement, box = document.getElementById('awa-queues').parentNode,
                main = document.getElementById('content-main').getBoundingClientRect();
            return {page: doc.scrollWidth, view: doc.clientWidth, box: box.getBoundingClientRect().right,
                    main: main.right};""")
        self.shot("dashboard-1400.png")
        self.assertLessEqual(geometry["page"], geometry["view"], "the page scrolls sideways: %r" % geometry)
        self.assertLessEqual(geometry["box"], geometry["main"] + 1, "the table runs out of its box: %r" % geometry)

    def test_retry_failed_job_through_the_dashboard(self):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select
        b = self.browser
        b.get(self.live_server_url + "/admin/login/?next=" + DASHBOARD)
        b.find_element(By.NAME, "username").send_keys("admin")
        b.find_element(By.NAME, "password").send_keys("admin-pw")
        b.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

        # the dashboard: the reports queue has a failed job, highlighted
        row = b.find_element(By.CSS_SELECTOR, '#awa-queues tr[data-queue="reports"]')
        self.assertIn("awa-row-failed", row.get_attribute("class"))
        link = row.find_element(By.CSS_SELECTOR, "a.awa-failed-link")
        self.assertEqual(link.text, "1 failed")
        stale = b.find_element(By.CSS_SELECTOR, '#awa-queues tr[data-queue="media"] td.awa-stale')
        self.assertEqual(stale.text, "1 stale")
        self.assertIn("paused", b.find_element(By.CSS_SELECTOR, '#awa-queues tr[data-queue="billing"]').text)
        b.find_element(By.ID, "toggle-nav-sidebar").click()      # more room for the table
        self.shot("dashboard.png")

        # the failed jobs of that queue; select the job, choose the action
        link.click()
        checkbox = b.find_element(By.CSS_SELECTOR, 'input[name="_selected_action"][value="%d"]' % self.failed)
        self.assertEqual(len(b.find_elements(By.CSS_SELECTOR, 'input[name="_selected_action"]')), 1)
        self.shot("failed-jobs.png")
        checkbox.click()
        Select(b.find_element(By.NAME, "action")).select_by_value("retry_selected")
        b.find_element(By.CSS_SELECTOR, 'button[name="index"]').click()

        # the confirmation page: nothing has changed yet (wait for it: the list page has an h1 too)
        self.wait_for_text("#content h1", "Retry 1 job?")
        self.assertEqual(state(self.failed), "failed")
        self.shot("confirm-retry.png")
        b.find_element(By.ID, "awa-confirm").click()

        # reported, and really available again
        self.wait_for_text("ul.messagelist", "1 job retried")
        self.assertEqual(state(self.failed), "available")
        self.assertEqual(sql("SELECT attempt FROM awa.jobs WHERE id = %s", [self.failed])[0][0], 0)

        # the job page shows its error history
        b.get(self.live_server_url + JOBS + "%d/change/" % self.failed)
        self.assertIn("KeyError: 'month'", b.find_element(By.CSS_SELECTOR, "table.awa-errors").text)
        self.shot("job.png")
        b.get(self.live_server_url + DASHBOARD)
        row = b.find_element(By.CSS_SELECTOR, '#awa-queues tr[data-queue="reports"]')
        self.assertNotIn("awa-row-failed", row.get_attribute("class"))

    def test_group_page_in_the_browser(self):
        """A job of a group links to the group's page, which shows its counts above its jobs."""
        from selenium.webdriver.common.by import By
        ids = [insert("etl.part", {"n": n}, queue="etl", group_id="nightly-8") for n in range(4)]
        sql("SELECT awa_group_on_finish('nightly-8', 'etl.report', queue => 'etl')")
        done = sql("SELECT id, run_lease FROM awa_claim('etl', batch => 2)")
        sql("SELECT awa_complete_many(%s::bigint[], %s::bigint[])", [[d[0] for d in done], [d[1] for d in done]])
        self.log_in(JOBS + "%d/change/" % ids[3])
        link = self.browser.find_element(By.ID, "awa-job-group")
        self.assertEqual(link.text, "nightly-8")
        self.assertIn("2 completed", self.browser.find_element(By.CSS_SELECTOR, ".awa-group-counts").text)
        self.browser.execute_script("arguments[0].scrollIntoView()", link)
        self.shot("job-group.png")
        link.click()
        self.wait_for_text("#awa-group-stats h2", "Group nightly-8")
        stats = self.browser.find_element(By.ID, "awa-group-stats")
        self.assertEqual(stats.find_element(By.CSS_SELECTOR, 'td[data-count="completed"]').text, "2")
        self.assertEqual(stats.find_element(By.CSS_SELECTOR, 'td[data-count="unfinished"]').text, "2")
        self.assertIn("etl.report", self.browser.find_element(By.ID, "awa-group-callback").text)
        self.assertEqual(len(self.browser.find_elements(By.CSS_SELECTOR, 'input[name="_selected_action"]')), 4)
        self.shot("group-page.png")
