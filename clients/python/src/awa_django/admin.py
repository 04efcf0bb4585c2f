"""awa's operator dashboard in Django's admin.

Pages: Queues (the dashboard from awa_queue_stats()), Jobs (newest first,
keyset-paginated on the primary key: no COUNT(*)), a job page (args, metadata,
progress, errors), Schedules.  Actions call awa's SQL API (``awa_django.ops``),
ask for confirmation on an intermediate page and report what changed.  Only
staff with ``awa_django.operate_queue`` see or perform them.
"""

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from awa_client.states import FINAL_STATES, RETRYABLE_STATES, STATES

from . import history, ops
from .models import OPERATE_PERMISSION, CronJob, Job, Queue

# Most jobs one bulk action touches (a crafted "select across" cannot run away).
MAX_BULK = 1000


def _listed(words, conjunction):
    """('a', 'b', 'c'), 'or' -> 'a, b or c': a state set in a sentence."""
    return "%s %s %s" % (", ".join(words[:-1]), conjunction, words[-1])


def can_operate(request):
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(OPERATE_PERMISSION))


def plural(n, one, many=None):
    return "%d %s" % (n, one if n == 1 else (many or one + "s"))


def pretty_json(value):
    if value is None:
        return format_html('<span class="awa-muted">{}</span>', "none")
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="awa-json">{}</pre>', text)


class AwaAdminMixin:
    """Read-only for everyone; the operate permission also lets a user view."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or can_operate(request)

    def has_module_permission(self, request):
        return super().has_module_permission(request) or can_operate(request)

    def has_operate_permission(self, request):
        return can_operate(request)

    def require_operate(self, request):
        if not can_operate(request):
            raise PermissionDenied

    def confirm(self, request, *, title, question, items=(), hidden=(), confirm_label="Yes, I'm sure",
                cancel_url, warning=None):
        """The intermediate page every action shows before it changes anything."""
        context = dict(
            self.admin_site.each_context(request),
            title=title, question=question, items=list(items), hidden=list(hidden),
            confirm_label=confirm_label, cancel_url=cancel_url, warning=warning,
            opts=self.model._meta, app_label=self.model._meta.app_label,
        )
        return TemplateResponse(request, "admin/awa_django/confirm.html", context)

    def changelist_url(self, model=None):
        opts = (model or self.model)._meta
        return reverse("admin:%s_%s_changelist" % (opts.app_label, opts.model_name),
                       current_app=self.admin_site.name)


# -- filters ------------------------------------------------------------------

class InputFilter(admin.SimpleListFilter):
    """A free-text filter (a GET form): no DISTINCT over millions of rows to build a choice list."""

    template = "admin/awa_django/input_filter.html"

    def lookups(self, request, model_admin):
        return (("", ""),)   # non-empty, so that the filter is shown

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name, "id__lt"]),
            "display": "All",
            "value": self.value() or "",
            "parameter_name": self.parameter_name,
            "hidden": [(k, v) for k, v in changelist.get_filters_params().items()
                       if k not in (self.parameter_name, "id__lt")],
        }


class QueueFilter(InputFilter):
    title = "queue"
    parameter_name = "queue"

    def queryset(self, request, queryset):
        return queryset.filter(queue=self.value()) if self.value() else queryset


class KindFilter(InputFilter):
    title = "kind"
    parameter_name = "kind"

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() else queryset


class TagFilter(InputFilter):
    title = "tag"
    parameter_name = "tag"

    def queryset(self, request, queryset):
        return queryset.filter(tags__contains=[self.value()]) if self.value() else queryset


class GroupFilter(InputFilter):
    """The jobs of one group (awa 0.3.0); the list then shows the group's counts (awa_group_stats)."""
    title = "group"
    parameter_name = "group"

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if not ops.valid_group(self.value()) or not ops.has_groups():
            return queryset.none()
        return queryset.filter(RawSQL(ops.GROUP_FILTER_SQL, [self.value()], output_field=BooleanField()))


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(s, s) for s in STATES]

    def queryset(self, request, queryset):
        if self.value() in STATES:
            return queryset.filter(state=self.value())
        return queryset

    def choices(self, changelist):
        # a new filter starts again from the newest job (drops the keyset's id__lt)
        yield {"selected": self.value() is None, "display": "All",
               "query_string": changelist.get_query_string(remove=[self.parameter_name, "id__lt"])}
        for value, title in self.lookup_choices:
            yield {"selected": self.value() == value, "display": title,
                   "query_string": changelist.get_query_string({self.parameter_name: value}, ["id__lt"])}


# -- jobs -----------------------------------------------------------------------

def _group_callback_text(stats):
    """Where a group's finish callback stands, in words."""
    if stats.get("callback_job_id") is not None:
        return "job %s enqueued at %s" % (stats["callback_job_id"], stats["finished_at"])
    if stats.get("callback_kind"):
        return "%s, waiting for the unfinished jobs" % stats["callback_kind"]
    return "none registered"


class KeysetChangeList(ChangeList):
    """Newest first, one page of list_per_page + 1 rows on the primary key; "older" = ?id__lt=<last id>.

    Never counts: neither the filtered nor the whole table (a COUNT(*) over millions of jobs).
    """

    def get_results(self, request):
        per_page = self.list_per_page
        rows = list(self.queryset[:per_page + 1])
        self.has_older = len(rows) > per_page
        self.result_list = rows[:per_page]
        self.result_count = len(self.result_list)
        self.full_result_count = self.result_count   # no "N results (M total)": we do not count
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.can_show_all = False
        self.multi_page = self.has_older or "id__lt" in self.params
        self.paginator = self.model_admin.get_paginator(request, self.queryset, per_page)
        self.older_url = (self.get_query_string({"id__lt": self.result_list[-1].id})
                          if self.has_older else None)
        self.newest_url = self.get_query_string(remove=["id__lt"]) if "id__lt" in self.params else None
        stale = ops.stale_job_ids([j.id for j in self.result_list if j.state == "running"])
        for job in self.result_list:
            job.awa_stale = job.id in stale


def _once(job, read):
    """read(job.id), read once per job object: a job's page shows several fields of one read (each
    read of awa.jobs by id is a lookup of the ring's view on a database on the ring engine)."""
    cache = job.__dict__.setdefault("_awa_reads", {})
    if read not in cache:
        cache[read] = read(job.id)
    return cache[read]


def state_badge(state, stale=False):
    label = "running (stale)" if stale else state
    css = "stale" if stale else state
    return format_html('<span class="awa-state awa-state-{}">{}</span>', css, label)


@admin.register(Job)
class JobAdmin(AwaAdminMixin, admin.ModelAdmin):
    list_display = ("id", "kind", "queue", "state_col", "attempts", "priority", "run_at", "created_at",
                    "tags_col", "last_error")
    list_display_links = ("id",)
    list_filter = (StateFilter, QueueFilter, KindFilter, TagFilter, GroupFilter)
    search_fields = ("id",)           # get_search_results: an id, exactly
    sortable_by = ()                  # always newest first: the keyset needs ORDER BY id DESC
    list_per_page = 50
    list_max_show_all = 0
    show_full_result_count = False
    actions = ("retry_selected", "cancel_selected")
    change_list_template = "admin/awa_django/job/change_list.html"
    change_form_template = "admin/awa_django/job/change_form.html"
    fieldsets = (
        (None, {"fields": (("id", "state_col", "kind", "queue"), ("priority", "attempts", "tags_col"),
                           ("run_at", "created_at", "attempted_at"), ("heartbeat_at", "deadline_at", "finalized_at"),
                           ("claimed_by", "run_lease"), ("lease_col", "timeout_col"))}),
        ("Args", {"fields": ("args_pretty",)}),
        ("Result", {"fields": ("result_pretty",)}),
        ("External callback", {"fields": ("callback_col", "callback_payload_pretty")}),
        ("Group", {"fields": ("group_col",)}),
        ("Errors", {"fields": ("errors_table",)}),
        ("Progress", {"fields": ("progress_pretty",)}),
        ("Metadata", {"fields": ("metadata_pretty",)}),
    )
    readonly_fields = ("state_col", "attempts", "tags_col", "args_pretty", "metadata_pretty",
                       "progress_pretty", "errors_table", "lease_col", "timeout_col", "result_pretty",
                       "callback_col", "callback_payload_pretty",
                       "group_col")

    def get_changelist(self, request, **kwargs):
        return KeysetChangeList

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {}, title="awa jobs")
        group = request.GET.get(GroupFilter.parameter_name)
        if group:   # the group's page: its counts above its jobs
            extra_context["awa_group"] = ops.group_stats(group) or {"group_id": group, "unknown": True}
            extra_context["awa_group"]["jobs_url"] = self._group_url(group)
            extra_context["awa_group"]["callback_url"] = self._job_url(
                extra_context["awa_group"].get("callback_job_id"))
        return super().changelist_view(request, extra_context)

    def _group_url(self, group):
        return "%s?%s" % (self.changelist_url(), urlencode({GroupFilter.parameter_name: group}))

    def _job_url(self, job_id):
        if job_id is None:
            return None
        return reverse("admin:awa_django_job_change", args=[quote(job_id)], current_app=self.admin_site.name)

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-id")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lstrip("#")
        if not term:
            return queryset, False
        if term.isdigit() and int(term) < 2 ** 63:
            return queryset.filter(id=int(term)), False
        return queryset.none(), False

    def lookup_allowed(self, lookup, value):
        return lookup == "id__lt" or super().lookup_allowed(lookup, value)

    # columns and fields

    @admin.display(description="lease (renewed by heartbeats)")
    def lease_col(self, obj):
        return _once(obj, ops.lease_and_timeout)[0] or "-"

    @admin.display(description="timeout (hard limit of an attempt)")
    def timeout_col(self, obj):
        return _once(obj, ops.lease_and_timeout)[1] or "none"

    @admin.display(description="state")
    def state_col(self, obj):
        stale = getattr(obj, "awa_stale", None)
        if stale is None and obj.state == "running":
            stale = obj.id in ops.stale_job_ids([obj.id])
        return state_badge(obj.state, bool(stale))

    @admin.display(description="attempt")
    def attempts(self, obj):
        return "%s / %s" % (obj.attempt, obj.max_attempts)

    @admin.display(description="tags")
    def tags_col(self, obj):
        return ", ".join(obj.tags or [])

    @admin.display(description="last error")
    def last_error(self, obj):
        if not obj.errors:
            return ""
        text = str((obj.errors[-1] or {}).get("error", ""))
        first = text.strip().splitlines()[-1] if text.strip() else ""
        return first[:80] + ("…" if len(first) > 80 else "")

    @admin.display(description="args")
    def args_pretty(self, obj):
        return pretty_json(obj.args)

    @admin.display(description="metadata")
    def metadata_pretty(self, obj):
        return pretty_json(obj.metadata)

    @admin.display(description="progress")
    def progress_pretty(self, obj):
        return pretty_json(obj.progress)

    @admin.display(description="result")
    def result_pretty(self, obj):
        info = _once(obj, ops.result_and_callback) or {}
        if info.get("result") is None:
            return format_html('<span class="awa-muted">{}</span>', "none")
        return pretty_json(info["result"])

    @admin.display(description="callback")
    def callback_col(self, obj):
        """Where the job's callback stands.  Its id is not shown: awa keeps only its hash (the
        id is a capability: whoever knows it may complete the job)."""
        info = _once(obj, ops.result_and_callback) or {}
        if not info.get("registered"):
            return format_html('<span class="awa-muted">{}</span>', "none registered")
        if info["state"] == "waiting_external":
            return format_html('<span id="awa-callback-state">waiting for its callback</span>: '
                               "times out at {} unless a heartbeat pushes it out (timeout {}); "
                               '<span id="awa-parked-since">parked since {}</span> (or its callback\'s last heartbeat)',
                               info["deadline_at"], info["callback_timeout"], info.get("heartbeat_at"))
        if info["state"] == "running" and info["callback_lease"] == info["run_lease"]:
            return format_html('<span id="awa-callback-state">registered, not parked yet</span> '
                               "(it will wait up to {})", info["callback_timeout"])
        return format_html('<span id="awa-callback-state">no longer waited for</span> '
                           "(registered under run_lease {})", info["callback_lease"])

    @admin.display(description="callback payload (of a failing or retrying callback)")
    def callback_payload_pretty(self, obj):
        info = _once(obj, ops.result_and_callback) or {}
        if info.get("callback_payload") is None:
            return format_html('<span class="awa-muted">{}</span>', "none")
        return pretty_json(info["callback_payload"])

    @admin.display(description="group")
    def group_col(self, obj):
        """The job's group: a link to the group's page (its jobs and counts), and its counts here."""
        group = _once(obj, ops.job_group)
        if group is None:
            return format_html('<span class="awa-muted">{}</span>', "none")
        stats = ops.group_stats(group) or {}
        counts = ", ".join("%d %s" % (stats[s], s) for s in STATES if stats.get(s))
        return format_html('<a id="awa-job-group" href="{}">{}</a> <span class="awa-group-counts">{} of {}'
                           " ({} unfinished); finish callback: {}</span>",
                           self._group_url(group), group, counts or "no jobs", stats.get("total", 0),
                           stats.get("unfinished", 0), _group_callback_text(stats))

    @admin.display(description="error history")
    def errors_table(self, obj):
        if not obj.errors:
            return format_html('<span class="awa-muted">{}</span>', "no errors")
        rows = format_html_join(
            "", '<tr><td>{}</td><td>{}</td><td><pre class="awa-error">{}</pre></td></tr>',
            ((e.get("attempt", ""), e.get("at", ""), e.get("error", ""))
             for e in (x if isinstance(x, dict) else {"error": x} for x in obj.errors)))
        return format_html('<table class="awa-errors"><thead><tr><th>attempt</th><th>at</th>'
                           '<th>error</th></tr></thead><tbody>{}</tbody></table>', rows)

    # the job page: Retry / Cancel buttons

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra_context.update(
                can_operate=can_operate(request),
                can_retry=obj.state in RETRYABLE_STATES,
                can_cancel=obj.state not in FINAL_STATES,
                queue_jobs_url="%s?%s" % (self.changelist_url(), urlencode({"queue": obj.queue})),
            )
            group = ops.job_group(obj.id)     # the group's page (awa 0.3.0)
            if group is not None:
                extra_context.update(job_group=group, job_group_url=self._group_url(group))
            # job dependencies: the jobs it runs after, and those that run after it
            parents, children = ops.dependencies(obj.id)
            extra_context.update(job_parents=parents, job_children=children)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/retry/", wrap(self.job_op_view), {"op": "retry"},
                 name="%s_%s_retry" % info),
            path("<path:object_id>/cancel/", wrap(self.job_op_view), {"op": "cancel"},
                 name="%s_%s_cancel" % info),
        ] + super().get_urls()

    def job_op_view(self, request, object_id, op):
        self.require_operate(request)
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("no job %s" % object_id)
        job_url = reverse("admin:awa_django_job_change", args=[quote(obj.pk)],
                          current_app=self.admin_site.name)
        if request.method == "POST" and request.POST.get("post") == "yes":
            self._do(request, op, [obj.id])
            return HttpResponseRedirect(job_url)
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        verb = "Retry" if op == "retry" else "Cancel"
        return self.confirm(
            request, title="%s job %s?" % (verb, obj.id),
            question=("The job will become available now, attempt 0 (awa_retry)." if op == "retry" else
                      "The job will be cancelled; a running job's worker is told to stop (awa_cancel)."),
            items=[self._item(obj)], hidden=[("post", "yes")],
            confirm_label="Yes, %s job %s" % (verb.lower(), obj.id), cancel_url=job_url,
            warning=None if (obj.state in RETRYABLE_STATES if op == "retry" else obj.state not in FINAL_STATES)
            else "This job is %s: it will be left as it is." % obj.state)

    @staticmethod
    def _item(job):
        return format_html("job {} &middot; {} &middot; queue {} &middot; {}", job.id, job.kind, job.queue,
                           state_badge(job.state))

    def _do(self, request, op, ids):
        if op == "retry":
            done, held = ops.retry_jobs(ids)
            self.message_user(request, "%s retried" % plural(len(done), "job"), messages.SUCCESS)
            if held:
                self.message_user(request, "%s left failed: another job holds its unique key (%s)"
                                  % (plural(len(held), "job"), ", ".join(str(i) for i in held)), messages.WARNING)
            skipped, why = len(ids) - len(done) - len(held), "not " + _listed(RETRYABLE_STATES, "or")
        else:
            done = ops.cancel_jobs(ids)
            self.message_user(request, "%s cancelled" % plural(len(done), "job"), messages.SUCCESS)
            skipped, why = len(ids) - len(done), "already finished"
        if skipped:
            self.message_user(request, "%s left alone (%s)" % (plural(skipped, "job"), why), messages.WARNING)

    # changelist actions (with the intermediate page)

    def _bulk(self, request, queryset, op, action_name):
        jobs = list(queryset.order_by("-id")[:MAX_BULK])
        if request.POST.get("post") == "yes":
            self._do(request, op, [j.id for j in jobs])
            return None
        hidden = [("action", action_name), ("post", "yes")] + \
            [(helpers.ACTION_CHECKBOX_NAME, j.id) for j in jobs]
        if op == "retry":
            n = sum(1 for j in jobs if j.state in RETRYABLE_STATES)
            title, question = "Retry %s?" % plural(len(jobs), "job"), (
                "%s will become available now (awa_retry); the others are not %s and stay as they are."
                % (plural(n, "job"), _listed(RETRYABLE_STATES, "or")))
        else:
            n = sum(1 for j in jobs if j.state not in FINAL_STATES)
            title, question = "Cancel %s?" % plural(len(jobs), "job"), (
                "%s will be cancelled (awa_cancel); finished ones stay as they are." % plural(n, "job"))
        return self.confirm(request, title=title, question=question, items=[self._item(j) for j in jobs],
                            hidden=hidden, confirm_label="Yes, %s" % op,
                            cancel_url=request.get_full_path())

    @admin.action(description="Retry selected jobs", permissions=["operate"])
    def retry_selected(self, request, queryset):
        return self._bulk(request, queryset, "retry", "retry_selected")

    @admin.action(description="Cancel selected jobs", permissions=["operate"])
    def cancel_selected(self, request, queryset):
        return self._bulk(request, queryset, "cancel", "cancel_selected")


# -- queues: the dashboard ------------------------------------------------------------

QUEUE_OPS = {
    # op: (needs queue, needs kind, title, question, confirm label)
    "pause": (True, False, "Pause queue {queue}?",
              "Workers stop claiming jobs of this queue until it is resumed (awa_pause_queue).", "Yes, pause"),
    "resume": (True, False, "Resume queue {queue}?",
               "Workers claim jobs of this queue again (awa_resume_queue).", "Yes, resume"),
    "forget": (True, False, "Forget the settings of queue {queue}?",
               "Removes its pause and concurrency limit (awa_forget_queue); it has no jobs.", "Yes, forget"),
    "drain": (True, False, "Drain queue {queue}?",
              "Cancels {jobs} of queue {queue} that wait: " + _listed(ops.WAITING_STATES, "and") +
              " (awa_drain_queue). Running jobs finish.", "Yes, drain"),
    "retry_failed": (False, False, "Retry failed jobs{scope}?",
                     "{jobs}{scope} will become available now (awa_retry_failed).", "Yes, retry them"),
    "discard_failed": (False, True, "Discard failed jobs{scope}?",
                       "Deletes {jobs}{scope} for good (awa_discard_failed).", "Yes, discard them"),
}


@admin.register(Queue)
class QueueAdmin(AwaAdminMixin, admin.ModelAdmin):
    """The changelist of queues is the dashboard: one row per queue of awa_queue_stats()."""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [path("op/<str:op>/", wrap(self.queue_op_view), name="awa_django_queue_op"),
                path("history/", wrap(self.history_view), name="awa_django_queue_history")] + super().get_urls()

    def history_view(self, request):
        return history.history_view(self, request)

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        stats = ops.queue_stats()
        jobs_url = self.changelist_url(Job)
        for row in stats:
            row["jobs_url"] = "%s?%s" % (jobs_url, urlencode({"queue": row["queue"]}))
            row["failed_url"] = "%s?%s" % (jobs_url, urlencode({"queue": row["queue"], "state": "failed"}))
            row["running_url"] = "%s?%s" % (jobs_url, urlencode({"queue": row["queue"], "state": "running"}))
            row["lag"] = _duration(row.get("lag_seconds"))
        failed = ops.failed_by_kind()
        for row in failed:
            row["jobs_url"] = "%s?%s" % (jobs_url, urlencode({"queue": row["queue"], "kind": row["kind"],
                                                              "state": "failed"}))
        context = dict(
            self.admin_site.each_context(request),
            title="awa queues", opts=self.model._meta, app_label=self.model._meta.app_label,
            stats=stats, failed=failed, keys=ops.busy_keys(), health=ops.health(), can_operate=can_operate(request),
            jobs_url=jobs_url, schedules_url=self.changelist_url(CronJob),
            totals={k: sum((r.get(k) or 0) for r in stats)
                    for k in ("available", "scheduled", "retryable", "running", "waiting_external", "failed",
                              "completed_last_hour", "stale_running")},
            **(extra_context or {}))
        return TemplateResponse(request, "admin/awa_django/dashboard.html", context)

    def queue_op_view(self, request, op):
        self.require_operate(request)
        if op not in QUEUE_OPS:
            raise Http404("unknown operation")
        data = request.POST if request.method == "POST" else request.GET
        queue, kind = data.get("queue", "").strip(), data.get("kind", "").strip()
        needs_queue, needs_kind, title, question, label = QUEUE_OPS[op]
        dashboard = self.changelist_url()
        if (needs_queue and not queue) or (needs_kind and not kind) or \
                (op == "retry_failed" and not (queue or kind)):
            self.message_user(request, "Name a %s." % ("kind" if needs_kind else "queue or a kind"),
                              messages.ERROR)
            return HttpResponseRedirect(dashboard)
        if request.method == "POST" and data.get("post") == "yes":
            self.message_user(request, self._run(request, op, queue, kind), messages.SUCCESS)
            return HttpResponseRedirect(dashboard)
        scope = "".join([" of kind %s" % ("any" if kind == "*" else kind) if kind else "",
                         " in queue %s" % queue if queue and not needs_queue else ""])
        if op == "drain":
            n = ops.count_drainable(queue)
        elif op in ("retry_failed", "discard_failed"):
            n = ops.count_failed(kind=kind or None, queue=None if op == "discard_failed" else (queue or None))
        else:
            n = 0
        fmt = dict(queue=queue, kind=kind, scope=scope, n=n,
                   jobs=plural(n, "job") if op == "drain" else plural(n, "failed job"))
        hidden = [("post", "yes"), ("queue", queue if op != "discard_failed" else ""), ("kind", kind)]
        return self.confirm(request, title=title.format(**fmt), question=question.format(**fmt),
                            hidden=hidden, confirm_label=label, cancel_url=dashboard)

    def _run(self, request, op, queue, kind):
        if op == "pause":
            changed = ops.pause_queue(queue, paused_by=request.user.get_username())
            return "Queue %s paused" % queue if changed else "Queue %s was already paused" % queue
        if op == "resume":
            changed = ops.resume_queue(queue)
            return "Queue %s resumed" % queue if changed else "Queue %s was not paused" % queue
        if op == "drain":
            return "Queue %s drained: %s cancelled" % (queue, plural(ops.drain_queue(queue), "job"))
        if op == "forget":
            changed = ops.forget_queue(queue)
            return "Settings of queue %s forgotten" % queue if changed else "Queue %s had no settings" % queue
        if op == "retry_failed":
            return "%s retried" % plural(ops.retry_failed(kind=kind or None, queue=queue or None), "failed job")
        return "%s discarded" % plural(ops.discard_failed(kind), "failed job")


def _duration(seconds):
    if seconds is None:
        return ""
    s = float(seconds)
    if s < 60:
        return "%.1f s" % s
    if s < 3600:
        return "%d min %d s" % (s // 60, s % 60)
    if s < 86400:
        return "%d h %d min" % (s // 3600, (s % 3600) // 60)
    return "%d d %d h" % (s // 86400, (s % 86400) // 3600)


# -- schedules --------------------------------------------------------------------------

@admin.register(CronJob)
class CronJobAdmin(AwaAdminMixin, admin.ModelAdmin):
    list_display = ("name", "cron", "timezone", "kind", "queue", "paused_col", "next_fire_at", "last_fired_at")
    list_filter = ("paused",)
    search_fields = ("name", "kind")
    actions = ("pause_selected", "resume_selected")
    change_form_template = "admin/awa_django/cronjob/change_form.html"
    fields = ("name", "cron", "timezone", "kind", "queue", "priority", "max_attempts", "tags",
              "missed_fire_policy", "paused_col", "next_fire_at", "last_fired_at", "created_at", "updated_at",
              "args_pretty", "metadata_pretty")
    readonly_fields = ("paused_col", "args_pretty", "metadata_pretty")

    @admin.display(description="paused")
    def paused_col(self, obj):
        if obj.paused:
            return format_html('<span class="awa-state awa-state-paused">{}</span>', "paused")
        return format_html('<span class="awa-state awa-state-available">{}</span>', "active")

    @admin.display(description="args")
    def args_pretty(self, obj):
        return pretty_json(obj.args)

    @admin.display(description="metadata")
    def metadata_pretty(self, obj):
        return pretty_json(obj.metadata)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {}, can_operate=can_operate(request))
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/pause/", wrap(self.schedule_op_view), {"op": "pause"},
                 name="%s_%s_pause" % info),
            path("<path:object_id>/resume/", wrap(self.schedule_op_view), {"op": "resume"},
                 name="%s_%s_resume" % info),
        ] + super().get_urls()

    def _do(self, request, op, names):
        if op == "pause":
            changed = ops.pause_schedules(names)
            self.message_user(request, "%s paused" % plural(len(changed), "schedule"), messages.SUCCESS)
        else:
            changed = ops.resume_schedules(names)
            self.message_user(request, "%s resumed" % plural(len(changed), "schedule"), messages.SUCCESS)
        if len(changed) < len(names):
            self.message_user(request, "%s already %s" % (plural(len(names) - len(changed), "schedule"),
                                                          "paused" if op == "pause" else "active"),
                              messages.WARNING)

    def schedule_op_view(self, request, object_id, op):
        self.require_operate(request)
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("no schedule %s" % object_id)
        url = reverse("admin:awa_django_cronjob_change", args=[quote(obj.pk)], current_app=self.admin_site.name)
        if request.method == "POST" and request.POST.get("post") == "yes":
            self._do(request, op, [obj.name])
            return HttpResponseRedirect(url)
        return self.confirm(
            request, title="%s schedule %s?" % (op.capitalize(), obj.name),
            question=("It stops firing until it is resumed (awa_pause_schedule)." if op == "pause" else
                      "It fires again from its next fire time after now (awa_resume_schedule)."),
            items=[format_html("{} &middot; {} &middot; {}", obj.name, obj.cron, obj.kind)],
            hidden=[("post", "yes")], confirm_label="Yes, %s" % op, cancel_url=url)

    def _bulk(self, request, queryset, op, action_name):
        schedules = list(queryset[:MAX_BULK])
        if request.POST.get("post") == "yes":
            self._do(request, op, [s.name for s in schedules])
            return None
        hidden = [("action", action_name), ("post", "yes")] + \
            [(helpers.ACTION_CHECKBOX_NAME, s.pk) for s in schedules]
        return self.confirm(
            request, title="%s %s?" % (op.capitalize(), plural(len(schedules), "schedule")),
            question=("They stop firing until resumed (awa_pause_schedule)." if op == "pause" else
                      "They fire again from their next fire time after now (awa_resume_schedule)."),
            items=[format_html("{} &middot; {} &middot; {}", s.name, s.cron, s.kind) for s in schedules],
            hidden=hidden, confirm_label="Yes, %s" % op, cancel_url=request.get_full_path())

    @admin.action(description="Pause selected schedules", permissions=["operate"])
    def pause_selected(self, request, queryset):
        return self._bulk(request, queryset, "pause", "pause_selected")

    @admin.action(description="Resume selected schedules", permissions=["operate"])
    def resume_selected(self, request, queryset):
        return self._bulk(request, queryset, "resume", "resume_selected")
