/*-------------------------------------------------------------------------
 *
 * health.c
 *		awa_health_check: whether awa is healthy in this database (who
 *		maintains it, failing maintenance steps, the notification queue),
 *		and why not.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "awa.h"
#include "ring.h"
#include "ring_obs.h"

PG_FUNCTION_INFO_V1(awa_health_check);

/*
 * Append to reason what awa.maintenance_failures holds (maintain.c): the
 * maintenance steps that are failing, and per step how many jobs (or
 * periodic jobs) it skipped, with the oldest one and its error.  Nothing on
 * a 0.2.0 schema, which has no such table.  Caller is in SPI; the text is
 * built in the caller's context.
 */
static void
maintenance_reasons(StringInfo reason)
{
	static AwaStmt stmt = AWA_QUERY("awa_health_check: query",
		"SELECT step, max(error) FILTER (WHERE item = ''),"
		" count(*) FILTER (WHERE item <> ''),"
		" (array_agg(item ORDER BY first_failed_at, item) FILTER (WHERE item <> ''))[1],"
		" (array_agg(error ORDER BY first_failed_at, item) FILTER (WHERE item <> ''))[1]"
		" FROM awa.maintenance_failures GROUP BY step ORDER BY step",
		0, InvalidOid);
	MemoryContext cxt = CurrentMemoryContext;
	Oid			nsp = get_namespace_oid("awa", true);
	uint64		i;

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("maintenance_failures", nsp)))
		return;
	awa_stmt_run(&stmt, NULL, NULL, 0);
	MemoryContextSwitchTo(cxt);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		char	   *step = SPI_getvalue(t, d, 1);
		char	   *step_error = SPI_getvalue(t, d, 2);
		bool		isnull;
		int64		skipped = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
		bool		schedules = strcmp(step, "schedules") == 0;

		if (step_error != NULL)
			appendStringInfo(reason, "%smaintenance step \"%s\" is failing: %s",
							 reason->len > 0 ? "; " : "", step, step_error);
		if (skipped > 0)
			appendStringInfo(reason, "%smaintenance step \"%s\" %s %lld %s (first %s%s%s: %s)",
							 reason->len > 0 ? "; " : "", step,
							 schedules ? "stopped" : "skipped", (long long) skipped,
							 schedules ? "periodic job(s)" : "job(s)",
							 schedules ? "\"" : "job ", SPI_getvalue(t, d, 4),
							 schedules ? "\"" : "", SPI_getvalue(t, d, 5));
	}
}

/* Notification queue usage from which the health check reports a problem. */
#define AWA_NOTIFY_QUEUE_WARN	0.5

/*
 * Who maintains this database and when its last round finished, for
 * awa_health_check: sets *by ("background worker", "awa_maintain() calls",
 * "primary (hot standby)" or "nobody"), *pid (the worker's, or 0) and
 * *last_round (0 if none is known), and appends a reason to reason when
 * nobody does.  A round counts as recent within ten maintenance intervals
 * (at least ten seconds).  Caller is in SPI.
 */
static void
who_maintains(StringInfo reason, const char **by, int *pid, TimestampTz *last_round)
{
	static SPIPlanPtr plan = NULL;
	AwaDbInfo	info;
	bool		preloaded = awa_dbstate_get(&info);
	int64		stale_ms = Max((int64) awa_maintenance_interval * 10, 10000);
	TimestampTz now = GetCurrentTimestamp();
	bool		recent;

	*pid = 0;
	*last_round = info.last_round;
	if (!preloaded && awa_schema_has(AWA_SCHEMA_ROUNDS))
	{
		bool		isnull;

		/* rounds driven by pg_cron or a script, recorded by awa_maintain */
		if (SPI_execute_plan(awa_plan(&plan, "SELECT last_round_at FROM awa.maintenance_rounds", 0, NULL),
							 NULL, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "awa_health_check: reading awa.maintenance_rounds failed");
		if (SPI_processed == 1)
		{
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			*last_round = isnull ? 0 : DatumGetTimestampTz(d);
		}
	}
	recent = *last_round != 0 &&
		now - *last_round <= stale_ms * (int64) 1000;

	if (RecoveryInProgress())
	{
		*by = "primary (hot standby)";
		return;
	}
	if (info.status == AWA_DB_WORKER)
	{
		*by = "background worker";
		*pid = info.worker_pid;
		/* a worker that runs but finishes no round (rounds failing, stuck) */
		if (!recent && now - info.status_at > stale_ms * (int64) 1000)
			appendStringInfo(reason, "%sno maintenance round finished in the last %lld s although the maintenance worker runs (pid %d)",
							 reason->len > 0 ? "; " : "", (long long) (stale_ms / 1000), info.worker_pid);
		return;
	}
	if (recent)
	{
		*by = "awa_maintain() calls";
		return;
	}
	*by = "nobody";
	appendStringInfo(reason, "%snothing maintains this database: no maintenance round finished in the last %lld s",
					 reason->len > 0 ? "; " : "", (long long) (stale_ms / 1000));
	if (!preloaded)
		appendStringInfoString(reason, " (awa is not in shared_preload_libraries: schedule awa_maintain() with pg_cron, or preload awa)");
	else if (!info.launcher_running)
		appendStringInfoString(reason, " (the maintenance launcher is not running)");
	else if (info.status == AWA_DB_NO_SLOT)
		appendStringInfoString(reason, " (no background worker slot was free for its maintenance worker: raise max_worker_processes)");
	else if (info.status == AWA_DB_NOT_LISTED)
		appendStringInfoString(reason, " (it is not in awa.databases)");
	else if (info.status == AWA_DB_UNREACHABLE)
		appendStringInfoString(reason, " (it does not allow connections)");
	else
		appendStringInfoString(reason, " (its maintenance worker has not started yet)");
}

/*
 * hook: rstats -- the health check's query on the ring engine, whose
 * awa.jobs is the ring's view (docs/storage.md, "Step 5: stats and admin
 * reads in constant time on the ring"); never reads every job.
 * stale_heartbeats: the running attempts whose latest heartbeat (beat, else
 * claim) is older than $1 seconds, found as the rescue finds the attempts
 * due (ring_lease.c): by the receipts and beats whose deadline lies after
 * the rescue's mark ($2; every attempt whose deadline is at or before it
 * has ended or has a later one) and before now() + $3 (what a deadline
 * written at the default awa.heartbeat_timeout may be ahead of a heartbeat
 * stale to this session's setting), each attempt once, by the row that
 * holds its current deadline (its latest beat, else its receipt).
 * oldest_available_seconds: the largest lag_seconds of awa_queue_stats()
 * (awa_ring_oldest_lag, ring_obs.c: the queues with available jobs by the
 * counters, the lag of each from the lane's floors).
 */
#define RING_HEALTH_SQL \
	"SELECT (SELECT extversion FROM pg_catalog.pg_extension" \
	"        WHERE extname = 'awa')," \
	" (SELECT count(*) FROM awa.claims c" \
	"   WHERE c.deadline_at > $2 AND c.deadline_at < now() + $3" \
	"   AND c.claimed_at < now() - make_interval(secs => $1)" \
	"   AND (SELECT 1 FROM awa.beats b WHERE b.job_id = c.job_id AND b.run_lease = c.run_lease" \
	"        AND b.slot = c.slot LIMIT 1) IS NULL" \
	"   AND (SELECT 1 FROM awa.done d WHERE d.job_id = c.job_id AND d.run_lease = c.run_lease" \
	"        AND d.slot = c.slot LIMIT 1) IS NULL)" \
	" + (SELECT count(*) FROM awa.beats b" \
	"   WHERE b.deadline_at > $2 AND b.deadline_at < now() + $3" \
	"   AND b.at < now() - make_interval(secs => $1)" \
	"   AND b.ctid = (SELECT l.ctid FROM awa.beats l WHERE l.job_id = b.job_id AND l.run_lease = b.run_lease" \
	"        AND l.slot = b.slot ORDER BY l.at DESC, l.ctid DESC LIMIT 1)" \
	"   AND (SELECT 1 FROM awa.done d WHERE d.job_id = b.job_id AND d.run_lease = b.run_lease" \
	"        AND d.slot = b.slot LIMIT 1) IS NULL)," \
	" NULL::float8," /* awa_ring_oldest_lag */ \
	" (SELECT coalesce(array_agg(queue ORDER BY queue), '{}')" \
	"        FROM awa.queue_meta WHERE paused)," \
	" pg_catalog.pg_notification_queue_usage()"

/*
 * awa_health_check() RETURNS TABLE (version, preloaded, worker_running,
 *		worker_pid, worker_last_run, stale_heartbeats, oldest_available_seconds,
 *		paused_queues, notification_queue_usage, healthy, reason,
 *		maintained_by)
 *
 * One row for monitoring this database.  maintained_by says who runs its
 * maintenance rounds (a background worker, awa_maintain() calls from
 * pg_cron or a script, its primary on a hot standby, or nobody);
 * worker_running and worker_pid are about this database's worker, and
 * worker_last_run is when a round last finished here, whoever ran it.
 * healthy is false, with every reason in reason (joined by "; "), when
 * nobody maintains the database or its worker finishes no round, running
 * jobs have heartbeats older than awa.heartbeat_timeout, the NOTIFY queue
 * is half full, or a maintenance step is failing or skipping jobs it cannot
 * process (awa.maintenance_failures).  Paused queues and the age of the
 * oldest available job are reported, not judged: both can be intended.
 * Before ALTER EXTENSION awa UPDATE to 0.3.0 the row has no maintained_by.
 */
Datum
awa_health_check(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_QUERY("awa_health_check: query",
		"SELECT (SELECT extversion FROM pg_catalog.pg_extension"
		"        WHERE extname = 'awa'),"
		" (SELECT count(*) FROM awa.jobs WHERE state = 'running'"
		"        AND heartbeat_at < now() - make_interval(secs => $1)),"
		" (SELECT CASE WHEN min(run_at) IS NOT NULL THEN greatest(extract(epoch FROM now())"
		"        - extract(epoch FROM min(run_at)), 0)::float8 END"
		"        FROM awa.jobs WHERE state = 'available'),"
		" (SELECT coalesce(array_agg(queue ORDER BY queue), '{}')"
		"        FROM awa.queue_meta WHERE paused),"
		" pg_catalog.pg_notification_queue_usage()",
		1, INT4OID);
	static SPIPlanPtr ring_plan = NULL;
	static const Oid ring_types[] = {INT4OID, TIMESTAMPTZOID, INTERVALOID};
	static AwaStmt mark_stmt = AWA_QUERY("awa_health_check: rescue mark",
		"SELECT passed FROM awa.ring_rescue_mark",
		0, InvalidOid);
	MemoryContext callercxt = CurrentMemoryContext;
	TupleDesc	desc;
	Datum		args[3] = {Int32GetDatum(awa_heartbeat_timeout)};
	Datum		values[12];
	bool		nulls[12];
	TimestampTz last_round;
	int			pid;
	const char *by;
	int64		stale;
	double		usage;
	StringInfoData reason;
	HeapTuple	t;
	TupleDesc	spidesc;
	bool		isnull;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "awa_health_check: return type must be a row type");

	SPI_connect();
	initStringInfo(&reason);
	who_maintains(&reason, &by, &pid, &last_round);
	if (awa_engine_ring())
	{
		/* hook: rstats -- see RING_HEALTH_SQL */
		const char *reset = GetConfigOptionResetString("awa.heartbeat_timeout");
		int			dflt = awa_heartbeat_timeout;
		Interval   *ahead = palloc0(sizeof(Interval));
		bool		isnull = true;

		/* shown with its unit ("90s", "2min"): read back in seconds */
		if (reset == NULL || !parse_int(reset, &dflt, GUC_UNIT_S, NULL))
			dflt = awa_heartbeat_timeout;

		args[1] = TimestampTzGetDatum(DT_NOBEGIN);
		if (awa_stmt_run(&mark_stmt, NULL, NULL, 1) == 1)
		{
			Datum		m = awa_stmt_value(0, "passed", &isnull);

			if (!isnull)
				args[1] = m;
		}
		if (dflt > awa_heartbeat_timeout)
			ahead->time = (int64) (dflt - awa_heartbeat_timeout) * USECS_PER_SEC;
		args[2] = IntervalPGetDatum(ahead);
		/* the planner pinned to index probes (ring.c) */
		awa_plan(&ring_plan, RING_HEALTH_SQL, 3, (Oid *) ring_types);
		awa_ring_run(ring_plan, args, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
					 "awa_health_check: query (ring engine)");
	}
	else
		awa_stmt_run(&stmt, args, NULL, 1);
	if (SPI_processed != 1)
		elog(ERROR, "awa_health_check: query: expected 1 row");
	t = SPI_tuptable->vals[0];
	spidesc = SPI_tuptable->tupdesc;

	MemoryContextSwitchTo(callercxt);
	memset(nulls, 0, sizeof(nulls));
	values[0] = SPI_getbinval(t, spidesc, 1, &nulls[0]);
	values[0] = nulls[0] ? (Datum) 0 : datumCopy(values[0], false, -1);
	values[1] = BoolGetDatum(awa_preloaded());
	values[2] = BoolGetDatum(pid != 0);
	values[3] = Int32GetDatum(pid);
	nulls[3] = (pid == 0);
	values[4] = TimestampTzGetDatum(last_round);
	nulls[4] = (last_round == 0);
	stale = DatumGetInt64(SPI_getbinval(t, spidesc, 2, &isnull));
	values[5] = Int64GetDatum(stale);
	values[6] = SPI_getbinval(t, spidesc, 3, &nulls[6]);
	if (awa_engine_ring())
	{
		double		lag;

		/* hook: rstats -- runs statements of its own: the row's values are copied above */
		nulls[6] = !awa_ring_oldest_lag(&lag);
		values[6] = Float8GetDatum(lag);
	}
	values[7] = datumCopy(SPI_getbinval(t, spidesc, 4, &isnull), false, -1);
	usage = DatumGetFloat8(SPI_getbinval(t, spidesc, 5, &isnull));
	values[8] = Float8GetDatum(usage);

	if (stale > 0)
		appendStringInfo(&reason, "%s%lld running jobs have heartbeats older than awa.heartbeat_timeout",
						 reason.len > 0 ? "; " : "", (long long) stale);
	if (usage >= AWA_NOTIFY_QUEUE_WARN)
		appendStringInfo(&reason, "%sthe notification queue is %.0f%% full",
						 reason.len > 0 ? "; " : "", usage * 100.0);
	maintenance_reasons(&reason);
	values[9] = BoolGetDatum(reason.len == 0);
	values[10] = reason.len > 0 ? CStringGetTextDatum(reason.data) : (Datum) 0;
	nulls[10] = (reason.len == 0);
	/* 0.3.0: who maintains the database (absent from older row types) */
	values[11] = CStringGetTextDatum(by);

	t = heap_form_tuple(desc, values, nulls);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(t));
}
