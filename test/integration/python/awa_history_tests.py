"""The throughput charts of awa_django (awa_queue_history drawn as SVG), under Django's test runner.

Run by test/integration/django_admin.sh with awa_admin_tests (on either engine).
Each minute's history is written as awa writes it (awa.history_deltas: seed), at
known times in the past, so each bucket's counts are known; the test client and
a headless chromium check that the bars, points and their titles say exactly
that, and the browser saves a screenshot (charts.png).  Jobs run through awa's
API show in the current minute (test_live_events_show_now).
"""

import os
import shutil

from django.contrib.auth.models import Permission, User
from django.test import TestCase

from awa_admin_tests import DASHBOARD, BrowserTestBase, insert, sql, wipe_awa

HISTORY = DASHBOARD + "history/"


def _bucket_of(us):
    """The histogram bucket of a duration in microseconds, as awa counts it (src/history.h): bucket 0
    holds [0, 1 ms), bucket b >= 1 holds [2^((b-1)/4) ms, 2^(b/4) ms), each bound rounded to whole
    microseconds; the last bucket, 160, also holds everything longer."""
    b = 0
    while b < 160 and us >= round(1000 * 2 ** (b / 4)):
        b += 1
    return b


def _durations(samples_us):
    """(count, total, max, histogram as a bigint[] literal whose subscripts are the bucket numbers)."""
    if not samples_us:
        return 0, None, None, None
    counts = {}
    for us in samples_us:
        b = _bucket_of(us)
        counts[b] = counts.get(b, 0) + 1
    lo, hi = min(counts), max(counts)
    hist = "[%d:%d]={%s}" % (lo, hi, ",".join(str(counts.get(b, 0)) for b in range(lo, hi + 1)))
    return len(samples_us), sum(samples_us), max(samples_us), hist


def seed(queue, minutes_ago, enqueued, completed=0, failed=0, cancelled=0, wait_s=10, run_s=2, kind="k",
         slow=0):
    """The history of jobs enqueued at 5 s into the minute `minutes_ago` minutes back, claimed wait_s
    later (all but the cancelled ones; the last `slow` of them 12 s later still), completed / failed
    run_s after that.  Returns that minute's bucket (1 minute).

    awa writes these events itself as jobs change, at the time they happen (awa.history_deltas, one
    row per statement and minute, on either engine); jobs cannot be moved into the past through
    awa's API, so the minute's row is written here as awa would have written it, and
    awa_queue_history (what the dashboard reads) adds it up.  test_live_events_show_now checks the
    events awa writes itself."""
    minute = sql("SELECT date_bin('1 minute', now() - make_interval(mins => %s), 'epoch')", [minutes_ago])[0][0]
    started = enqueued - cancelled
    assert 0 <= slow <= started and completed + failed <= started
    second = 1000000
    waits = [wait_s * second] * (started - slow) + [(wait_s + 12) * second] * slow
    # every job ends at the same moment: claimed + run_s (+ 12 s if some are slow); the slow ones
    # (the last claimed) ran 12 s less
    done_after = wait_s + run_s + (12 if slow else 0)
    runs = [(done_after - w // second) * second for w in waits[:completed + failed]]
    wait = _durations(waits)
    run = _durations(runs)
    sql("INSERT INTO awa.history_deltas (minute, queue, kind, enqueued, started, completed, failed, retried,"
        " cancelled, wait_count, wait_total_us, wait_max_us, wait_hist, run_count, run_total_us, run_max_us,"
        " run_hist) VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s, %s, %s::bigint[], %s, %s, %s, %s::bigint[])",
        [minute, queue, kind, enqueued, started, completed, failed, cancelled] + list(wait) + list(run))
    return minute


def bar(series, bucket, value):
    """The SVG rect of a throughput bar as the page writes it."""
    return 'data-series="%s" data-bucket="%s" data-value="%d"><title>%s %s: %d</title>' % (
        series, bucket.isoformat(), value, bucket.strftime("%Y-%m-%d %H:%M"), series, value)


class ChartPageTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        perms = Permission.objects.filter(content_type__app_label="awa_django")
        cls.viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
        cls.viewer.user_permissions.add(*perms.exclude(codename="operate_queue"))
        User.objects.create_user("outsider", password="pw", is_staff=True)

    def setUp(self):
        wipe_awa()
        self.m3 = seed("mail", 3, enqueued=6, completed=4, failed=1, cancelled=1, wait_s=20, run_s=2)
        self.m40 = seed("mail", 40, enqueued=3, completed=3, wait_s=40)
        self.r10 = seed("reports", 10, enqueued=2, failed=2, kind="report.build")
        self.client.login(username="viewer", password="pw")

    def test_dashboard_links_to_the_charts(self):
        self.assertContains(self.client.get(DASHBOARD), 'href="%s" id="awa-history-link"' % HISTORY)

    def test_last_hour_bars_and_totals(self):
        r = self.client.get(HISTORY)
        self.assertEqual(r.status_code, 200)
        queues = {q["queue"]: q for q in r.context["queues"]}
        self.assertEqual(list(queues), ["mail", "reports"])
        self.assertEqual(queues["mail"]["totals"]["completed"], 7)
        self.assertEqual(queues["mail"]["totals"]["failed"], 1)
        self.assertEqual(queues["mail"]["totals"]["cancelled"], 1)
        self.assertEqual(queues["mail"]["totals"]["enqueued"], 9)
        self.assertEqual(len(queues["mail"]["points"]), 61)          # 1-minute buckets, now's included
        self.assertContains(r, bar("completed", self.m3, 4), html=False)
        self.assertContains(r, bar("failed", self.m3, 1), html=False)
        self.assertContains(r, bar("completed", self.m40, 3), html=False)
        self.assertContains(r, bar("failed", self.r10, 2), html=False)
        self.assertNotContains(r, 'data-series="completed" data-bucket="%s"' % self.r10.isoformat())
        # the enqueued line's point, and the wait p50 of the minute: 20 s is in the bucket
        # [2^(57/4) ms, 2^(58/4) ms) = [19.5 s, 23.2 s), cut to the exact maximum, 20 s
        self.assertContains(r, 'data-series="enqueued" data-bucket="%s" data-value="6">' % self.m3.isoformat())
        self.assertContains(r, 'data-series="wait_p50" data-bucket="%s" data-value="20.0"><title>%s wait p50: 20 s'
                            % (self.m3.isoformat(), self.m3.strftime("%Y-%m-%d %H:%M")))
        self.assertContains(r, 'data-series="wait_p95" data-bucket="%s" data-value="40.0">' % self.m40.isoformat())
        self.assertContains(r, '<strong class="awa-total-completed">7</strong>')
        # drawn on the server: no script, nothing loaded from elsewhere
        main = r.content.split(b'<div id="content-main">')[1]
        self.assertNotIn(b"<script", main)
        self.assertNotIn(b"https://", main)

    def test_last_day_buckets_of_30_minutes(self):
        r = self.client.get(HISTORY + "?range=day")
        queues = {q["queue"]: q for q in r.context["queues"]}
        self.assertIn(len(queues["mail"]["points"]), (48, 49))
        b3 = sql("SELECT date_bin('30 minutes', %s::timestamptz, 'epoch')", [self.m3])[0][0]
        b40 = sql("SELECT date_bin('30 minutes', %s::timestamptz, 'epoch')", [self.m40])[0][0]
        if b3 == b40:
            self.assertContains(r, bar("completed", b3, 7), html=False)
        else:
            self.assertContains(r, bar("completed", b3, 4), html=False)
            self.assertContains(r, bar("completed", b40, 3), html=False)

    def test_live_events_show_now(self):
        """Jobs enqueued, claimed, completed, failed and cancelled through awa's API now: the events the
        engine writes itself, in the bucket awa_queue_history puts them in (the current minute)."""
        ids = [insert("live.job", queue="live", max_attempts=1) for _ in range(3)]
        self.assertEqual(sql("SELECT state::text FROM awa_cancel(%s)", [ids[2]])[0][0], "cancelled")
        claimed = sql("SELECT id, run_lease FROM awa_claim('live', batch => 2) ORDER BY id")
        self.assertEqual([c[0] for c in claimed], ids[:2])
        self.assertTrue(sql("SELECT awa_complete(%s, %s)", claimed[0])[0][0])
        self.assertEqual(sql("SELECT awa_fail(%s, %s, 'boom')", claimed[1])[0][0], "failed")
        buckets = sql("SELECT bucket_start FROM awa_queue_history('live', now() - interval '1 hour',"
                      " interval '1 minute')")
        self.assertEqual(len(buckets), 1)
        now = buckets[0][0]
        r = self.client.get(HISTORY + "?queue=live")
        (live,) = r.context["queues"]
        self.assertEqual({k: live["totals"][k] for k in ("enqueued", "started", "completed", "failed", "cancelled")},
                         {"enqueued": 3, "started": 2, "completed": 1, "failed": 1, "cancelled": 1})
        self.assertEqual(live["points"][-1]["bucket_start"], now)
        self.assertContains(r, bar("completed", now, 1), html=False)
        self.assertContains(r, bar("failed", now, 1), html=False)
        self.assertContains(r, 'data-series="enqueued" data-bucket="%s" data-value="3">' % now.isoformat())
        self.assertContains(r, 'data-series="wait_p50" data-bucket="%s"' % now.isoformat())

    def test_one_queue(self):
        r = self.client.get(HISTORY + "?queue=reports")
        self.assertEqual([q["queue"] for q in r.context["queues"]], ["reports"])

    def test_nothing_yet(self):
        wipe_awa()
        sql("DELETE FROM awa.history_deltas")
        sql("DELETE FROM awa.queue_history")
        self.assertContains(self.client.get(HISTORY), 'id="awa-no-history"')

    def test_needs_the_view_permission(self):
        self.client.logout()
        self.client.login(username="outsider", password="pw")
        self.assertEqual(self.client.get(HISTORY).status_code, 403)
        self.client.logout()
        self.assertEqual(self.client.get(HISTORY).status_code, 302)


class ChartBrowserTests(BrowserTestBase):
    """Headless chromium draws the charts: the bars of known minutes carry their counts."""

    def setUp(self):
        wipe_awa()
        sql("DELETE FROM awa.history_deltas")
        sql("DELETE FROM awa.queue_history")
        User.objects.create_superuser("admin", "admin@example.com", "admin-pw")
        # an hour of two queues worth looking at: mail busy with a slow spell, reports failing now and then
        self.known = {}
        for m in range(59, -1, -1):
            n = 8 + (m * 7) % 11
            failed = 1 if m % 9 == 0 else 0
            wait = 2 + (25 if 20 <= m <= 28 else m % 5)
            self.known[("mail", m)] = (seed("mail", m, enqueued=n + failed, completed=n, failed=failed,
                                            wait_s=wait, run_s=1, kind="mail.send", slow=1 + m % 2), n, failed)
            if m % 4 == 0:
                fails = 2 if m % 12 == 0 else 0
                self.known[("reports", m)] = (seed("reports", m, enqueued=3, completed=3 - fails, failed=fails,
                                                   wait_s=1 + m % 3, run_s=8, kind="report.build"),
                                              3 - fails, fails)

    def tearDown(self):
        wipe_awa()

    def test_charts_render_with_the_counts(self):
        from selenium.webdriver.common.by import By
        b = self.browser
        self.log_in(DASHBOARD)
        b.find_element(By.ID, "awa-history-link").click()
        mail = b.find_element(By.CSS_SELECTOR, '.awa-charts-queue[data-queue="mail"]')
        self.assertEqual(len(b.find_elements(By.CSS_SELECTOR, ".awa-charts-queue")), 2)
        charts = mail.find_elements(By.CSS_SELECTOR, "svg.awa-chart")
        self.assertEqual(len(charts), 2)
        self.assertGreater(charts[0].size["width"], 400)
        self.assertGreater(charts[0].size["height"], 150)
        # every bar as drawn: (queue, series, bucket) -> (value, title, height in pixels); one script call
        drawn = {}
        for r in b.execute_script("""
                return Array.from(document.querySelectorAll('.awa-charts-queue rect.awa-bar')).map(function (e) {
                    return [e.closest('.awa-charts-queue').dataset.queue, e.dataset.series, e.dataset.bucket,
                            e.dataset.value, e.querySelector('title').textContent,
                            e.getBoundingClientRect().height]; });"""):
            drawn[(r[0], r[1], r[2])] = (r[3], r[4], r[5])
        expected = {}
        for (queue, m), (bucket, completed, failed) in self.known.items():
            for series, n in (("completed", completed), ("failed", failed)):
                if n:
                    expected[(queue, series, bucket.isoformat())] = (
                        str(n), "%s %s: %d" % (bucket.strftime("%Y-%m-%d %H:%M"), series, n))
        self.assertEqual({k: v[:2] for k, v in drawn.items()}, expected)
        self.assertTrue(all(v[2] > 0 for v in drawn.values()), drawn)
        total = sum(c for (q, _), (_, c, _) in self.known.items() if q == "mail")
        self.assertEqual(mail.find_element(By.CSS_SELECTOR, ".awa-total-completed").text, str(total))
        # the slow spell shows in the wait lines: 25 minutes ago 16 jobs waited 27 s and 2 waited 39 s;
        # p50 is the upper bound of 27 s's bucket ([2^(58/4), 2^(59/4)) ms = [23.2 s, 27.6 s)), p95 the
        # slowest, cut to the exact maximum
        slow = self.known[("mail", 25)][0]
        point = mail.find_element(By.CSS_SELECTOR, 'circle.awa-wait_p50[data-bucket="%s"]' % slow.isoformat())
        self.assertAlmostEqual(float(point.get_attribute("data-value")), 2 ** (59 / 4) / 1000, places=5)
        self.assertIn("wait p50: 27.6 s", point.find_element(By.TAG_NAME, "title").get_attribute("textContent"))
        point = mail.find_element(By.CSS_SELECTOR, 'circle.awa-wait_p95[data-bucket="%s"]' % slow.isoformat())
        self.assertEqual(float(point.get_attribute("data-value")), 39.0)
        b.set_window_size(1500, 1000)
        self.addCleanup(b.set_window_size, 1500, 900)
        b.find_element(By.ID, "toggle-nav-sidebar").click()
        path = self.shot("charts.png")
        if os.environ.get("AWA_CHARTS_SCREENSHOT"):
            shutil.copyfile(path, os.environ["AWA_CHARTS_SCREENSHOT"])
        # the last day: 30-minute buckets
        b.find_element(By.CSS_SELECTOR, '#awa-range a[href^="?range=day"]').click()
        self.assertEqual(b.find_element(By.CSS_SELECTOR, "#awa-range a.awa-current").text, "last day")
        day = sum(int(r.get_attribute("data-value")) for r in b.find_elements(
            By.CSS_SELECTOR, '.awa-charts-queue[data-queue="mail"] rect.awa-completed'))
        self.assertEqual(day, total)
