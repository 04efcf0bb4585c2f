"""Throughput charts: awa_queue_history() drawn as SVG on the server.

Per queue, over the last hour (1-minute buckets) or the last day (30-minute
buckets): jobs completed, retried and failed per bucket as stacked bars with
jobs enqueued as a line, and the wait time (from due to claimed) as its p50
and p95 lines.  Plain SVG written here: no script, nothing loaded from
anywhere.  Every bar and point carries a <title> (the tooltip: bucket, series,
value) and data-series / data-bucket / data-value attributes.
"""

import math
from html import escape

from django.db import connections
from django.utils import timezone

# range name -> (label, how far back, bucket, x-axis label every n buckets)
RANGES = {
    "hour": ("last hour", "1 hour", "1 minute", 10),
    "day": ("last day", "24 hours", "30 minutes", 8),
}

# Throughput series, stacked bottom to top, and their colours.
BAR_SERIES = (("completed", "#5b9a45"), ("retried", "#e0a030"), ("failed", "#ba2121"))
LINE_SERIES = (("enqueued", "#417690"),)
WAIT_SERIES = (("wait_p50", "#417690", "wait p50"), ("wait_p95", "#9b59b6", "wait p95"))

WIDTH, HEIGHT = 620, 200
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 22, 34


def read(range_name, queue=None, using="default"):
    """The buckets of the range and, per queue, one dict per bucket (zeros where nothing happened)."""
    label, back, bucket, _ = RANGES[range_name]
    with connections[using].cursor() as cur:
        cur.execute(
            "SELECT b FROM generate_series(date_bin(%s::interval, now() - %s::interval, 'epoch'),"
            " now(), %s::interval) AS b ORDER BY b", [bucket, back, bucket])
        buckets = [r[0] for r in cur.fetchall()]
        cur.execute(
            "SELECT * FROM awa_queue_history(%s, now() - %s::interval, %s::interval)", [queue, back, bucket])
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    index = dict((b, i) for i, b in enumerate(buckets))
    queues = {}
    for row in rows:
        series = queues.setdefault(row["queue"], [None] * len(buckets))
        i = index.get(row["bucket_start"])
        if i is not None:
            series[i] = row
    result = []
    for name in sorted(queues):
        points = [r or {"bucket_start": b} for b, r in zip(buckets, queues[name])]
        totals = dict((k, sum(p.get(k) or 0 for p in points))
                      for k in ("enqueued", "started", "completed", "failed", "retried", "cancelled"))
        waits = [p.get("wait_max") for p in points if p.get("wait_max") is not None]
        totals["wait_max"] = max(waits) if waits else None
        result.append({"queue": name, "points": points, "totals": totals})
    return buckets, result


def _nice_max(v, integer=False):
    """A round upper bound of the y axis at or above v, whose quarters are round too (whole, for counts)."""
    if v <= 0:
        return 4 if integer else 1
    quarter = v / 4.0
    mag = 10 ** math.floor(math.log10(quarter))
    for step in (1, 2, 2.5, 5, 10):
        q = step * mag
        if quarter <= q and (not integer or q == int(q)):
            return 4 * q
    return 4 * 10 * mag


def duration(seconds):
    """A duration in seconds as a short label: 850 ms, 12.5 s, 3.2 min, 1.5 h."""
    if seconds is None:
        return ""
    s = float(seconds)
    if s == 0:
        return "0"
    if s < 1:
        return "%.0f ms" % (s * 1000)
    if s < 60:
        return ("%.1f s" % s).replace(".0 s", " s")
    if s < 3600:
        return "%.1f min" % (s / 60)
    return "%.1f h" % (s / 3600)


def _local(ts, fmt):
    return timezone.localtime(ts).strftime(fmt) if timezone.is_aware(ts) else ts.strftime(fmt)


def _frame(title, ymax, ylabel, buckets, every, chart_id):
    """The SVG head, grid, y and x axis labels; returns (parts, x of bucket i, y of value, bar width)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(buckets), 1)
    slot = plot_w / n

    def x(i):
        return LEFT + i * slot

    def y(v):
        return TOP + plot_h - (float(v) / ymax) * plot_h

    parts = ['<svg xmlns="http://www.w3.org/2000/svg" class="awa-chart" id="%s" width="%d" height="%d" '
             'viewBox="0 0 %d %d" role="img" aria-label="%s">' % (escape(chart_id), WIDTH, HEIGHT, WIDTH, HEIGHT,
                                                                 escape(title)),
             '<text x="%d" y="14" class="awa-chart-title">%s</text>' % (LEFT, escape(title))]
    for k in range(5):
        v = ymax * k / 4
        yy = y(v)
        parts.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="awa-grid"/>' % (LEFT, WIDTH - RIGHT, yy, yy))
        parts.append('<text x="%d" y="%.1f" class="awa-ylabel" text-anchor="end">%s</text>'
                     % (LEFT - 5, yy + 4, escape(ylabel(v))))
    for i, b in enumerate(buckets):
        if i % every == 0:
            parts.append('<text x="%.1f" y="%d" class="awa-xlabel" text-anchor="middle">%s</text>'
                         % (x(i) + slot / 2, HEIGHT - BOTTOM + 15, escape(_local(b, "%H:%M"))))
    parts.append('<line x1="%d" x2="%d" y1="%d" y2="%d" class="awa-axis"/>'
                 % (LEFT, WIDTH - RIGHT, TOP + plot_h, TOP + plot_h))
    return parts, x, y, slot


def _legend(parts, items):
    xx = LEFT
    for name, color in items:
        parts.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' % (xx, HEIGHT - 12, color))
        parts.append('<text x="%d" y="%d" class="awa-legend">%s</text>' % (xx + 14, HEIGHT - 3, escape(name)))
        xx += 24 + 7 * len(name)


def throughput_svg(queue, points, every, chart_id):
    """Stacked bars (completed, retried, failed) and the enqueued line, per bucket."""
    buckets = [p["bucket_start"] for p in points]
    top = max([sum(p.get(s) or 0 for s, _ in BAR_SERIES) for p in points] +
              [p.get("enqueued") or 0 for p in points] + [1])
    ymax = _nice_max(top, integer=True)
    parts, x, y, slot = _frame("%s: jobs per bucket" % queue, ymax,
                               lambda v: ("%d" % v) if v == int(v) else ("%.1f" % v), buckets, every, chart_id)
    bw = max(slot - 2, 1)
    for i, p in enumerate(points):
        when = _local(p["bucket_start"], "%Y-%m-%d %H:%M")
        base = 0
        for series, color in BAR_SERIES:
            v = p.get(series) or 0
            if v <= 0:
                continue
            y0, y1 = y(base), y(base + v)
            parts.append('<rect class="awa-bar awa-%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" '
                         'data-series="%s" data-bucket="%s" data-value="%d"><title>%s %s: %d</title></rect>'
                         % (series, x(i) + 1, y1, bw, y0 - y1, color, series, escape(p["bucket_start"].isoformat()),
                            v, escape(when), series, v))
            base += v
    for series, color in LINE_SERIES:
        coords = ["%.1f,%.1f" % (x(i) + slot / 2, y(p.get(series) or 0)) for i, p in enumerate(points)]
        parts.append('<polyline class="awa-line awa-%s" fill="none" stroke="%s" stroke-width="1.5" points="%s"/>'
                     % (series, color, " ".join(coords)))
        for i, p in enumerate(points):
            v = p.get(series) or 0
            if v:
                parts.append('<circle class="awa-point awa-%s" cx="%.1f" cy="%.1f" r="2.2" fill="%s" '
                             'data-series="%s" data-bucket="%s" data-value="%d"><title>%s %s: %d</title></circle>'
                             % (series, x(i) + slot / 2, y(v), color, series, escape(p["bucket_start"].isoformat()),
                                v, escape(_local(p["bucket_start"], "%Y-%m-%d %H:%M")), series, v))
    _legend(parts, list(BAR_SERIES) + list(LINE_SERIES))
    parts.append("</svg>")
    return "".join(parts)


def wait_svg(queue, points, every, chart_id):
    """The wait time's p50 and p95 per bucket (gaps where no job was claimed)."""
    buckets = [p["bucket_start"] for p in points]
    top = max([p.get("wait_p95") or 0 for p in points] + [p.get("wait_p50") or 0 for p in points] + [0])
    ymax = _nice_max(top) if top > 0 else 1
    parts, x, y, slot = _frame("%s: wait time (due to claimed)" % queue, ymax, duration, buckets, every, chart_id)
    for series, color, label in WAIT_SERIES:
        run = []
        for i, p in enumerate(points + [{}]):
            v = p.get(series)
            if v is None:
                if len(run) > 1:
                    parts.append('<polyline class="awa-line awa-%s" fill="none" stroke="%s" stroke-width="1.5" '
                                 'points="%s"/>' % (series, color, " ".join(run)))
                run = []
                continue
            run.append("%.1f,%.1f" % (x(i) + slot / 2, y(v)))
            parts.append('<circle class="awa-point awa-%s" cx="%.1f" cy="%.1f" r="2.2" fill="%s" '
                         'data-series="%s" data-bucket="%s" data-value="%s"><title>%s %s: %s</title></circle>'
                         % (series, x(i) + slot / 2, y(v), color, series, escape(p["bucket_start"].isoformat()),
                            repr(float(v)), escape(_local(p["bucket_start"], "%Y-%m-%d %H:%M")), label,
                            escape(duration(v))))
    _legend(parts, [(label, color) for _, color, label in WAIT_SERIES])
    parts.append("</svg>")
    return "".join(parts)


def charts(range_name, queue=None, using="default"):
    """Per queue: its totals and its two charts (SVG text), for the template."""
    every = RANGES[range_name][3]
    _, queues = read(range_name, queue, using)
    for i, q in enumerate(queues):
        q["throughput_svg"] = throughput_svg(q["queue"], q["points"], every, "awa-throughput-%d" % i)
        q["wait_svg"] = wait_svg(q["queue"], q["points"], every, "awa-wait-%d" % i)
        q["wait_max"] = duration(q["totals"]["wait_max"])
    return queues


def history_view(model_admin, request):
    """The throughput page: ?range=hour (default) or day, optional ?queue=."""
    from django.core.exceptions import PermissionDenied
    from django.template.response import TemplateResponse

    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    range_name = request.GET.get("range", "hour")
    if range_name not in RANGES:
        range_name = "hour"
    queue = request.GET.get("queue", "").strip() or None
    opts = model_admin.model._meta
    context = dict(
        model_admin.admin_site.each_context(request),
        title="awa throughput", opts=opts, app_label=opts.app_label,
        queues=charts(range_name, queue), range_name=range_name, range_label=RANGES[range_name][0],
        ranges=[(k, v[0]) for k, v in RANGES.items()], queue=queue or "",
        dashboard_url=model_admin.changelist_url())
    return TemplateResponse(request, "admin/awa_django/history.html", context)
