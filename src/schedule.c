/*-------------------------------------------------------------------------
 *
 * schedule.c
 *		Periodic jobs: awa_schedule, awa_unschedule, awa_pause_schedule,
 *		awa_resume_schedule, and firing due schedules for awa_maintain.
 *
 * A schedule is a row of awa.cron_jobs: a cron expression, a time zone and
 * the job to enqueue.  next_fire_at is the next instant it is due.  A
 * maintenance round locks the due rows (FOR UPDATE SKIP LOCKED), enqueues
 * their jobs and advances next_fire_at in the same transaction, so each fire
 * time is enqueued exactly once however many maintainers run at once: a
 * second maintainer either skips a row that is locked or, once the first
 * commits, sees next_fire_at already moved past now.
 *
 * Missed fire times (the server was down, or maintenance did not run):
 * "coalesce" enqueues one job, for the most recent missed fire time;
 * "catch_up" enqueues one job per missed fire time, oldest first, at most
 * AWA_CATCH_UP_MAX per schedule per round, the rest in the next rounds.
 * A paused schedule does not miss fire times: resuming it starts from the
 * first fire time after the moment it is resumed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "awa.h"
#include "cron.h"
#include "maintain.h"

PG_FUNCTION_INFO_V1(awa_schedule);
PG_FUNCTION_INFO_V1(awa_unschedule);
PG_FUNCTION_INFO_V1(awa_pause_schedule);
PG_FUNCTION_INFO_V1(awa_resume_schedule);

/* At most this many due schedules are looked at in one round. */
#define AWA_SCHEDULES_PER_ROUND		1000

/* The error every function raises for a schedule name that does not exist. */
static void
schedule_not_found(text *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("periodic job \"%s\" does not exist", text_to_cstring(name))));
}

/*
 * The first fire time of a parsed expression after "after", or NULL (in
 * *isnull) when it never fires again.
 */
static TimestampTz
next_fire(const AwaCronSpec *spec, const char *tzname, TimestampTz after,
		  bool *isnull)
{
	TimestampTz next = awa_cron_next(spec, tzname, after);

	*isnull = TIMESTAMP_IS_NOEND(next);
	return next;
}

/*
 * awa_schedule(name, cron, kind, args, queue, timezone, priority,
 *				max_attempts, tags, metadata, missed_fire_policy)
 *		RETURNS awa.cron_jobs
 *
 * Create or replace a periodic job.  Everything is validated before
 * anything is written: the name (1..200 characters), the cron expression,
 * the time zone, the job's fields exactly as awa_insert checks them, and
 * the policy; all with SQLSTATE 22023 (or 22004 for a NULL).  Replacing a
 * schedule keeps its paused flag and created_at, and keeps next_fire_at
 * unless the expression or time zone changed.
 */
Datum
awa_schedule(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_STMT("awa_schedule: upsert", SPI_OK_INSERT_RETURNING,
		"INSERT INTO awa.cron_jobs AS c (name, cron, kind, args, queue,"
		" timezone, priority, max_attempts, tags, metadata,"
		" missed_fire_policy, next_fire_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
		" ON CONFLICT (name) DO UPDATE SET"
		" cron = EXCLUDED.cron, kind = EXCLUDED.kind, args = EXCLUDED.args,"
		" queue = EXCLUDED.queue, timezone = EXCLUDED.timezone,"
		" priority = EXCLUDED.priority, max_attempts = EXCLUDED.max_attempts,"
		" tags = EXCLUDED.tags, metadata = EXCLUDED.metadata,"
		" missed_fire_policy = EXCLUDED.missed_fire_policy,"
		" next_fire_at = CASE WHEN c.cron = EXCLUDED.cron"
		"   AND c.timezone = EXCLUDED.timezone AND c.next_fire_at IS NOT NULL"
		"   THEN c.next_fire_at ELSE EXCLUDED.next_fire_at END,"
		" updated_at = now()"
		" RETURNING *",
		12, TEXTOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID, TEXTOID, INT2OID, INT2OID, TEXTARRAYOID, JSONBOID, TEXTOID, TIMESTAMPTZOID);
	static const char *const argnames[] = {"name", "cron", "kind", "args",
		"queue", "timezone", "priority", "max_attempts", "tags", "metadata",
	"missed_fire_policy"};
	MemoryContext callercxt = CurrentMemoryContext;
	text	   *name;
	char	   *cron;
	char	   *tzname;
	char	   *policy;
	AwaCronSpec spec;
	AwaJob		job = {0};
	TimestampTz next;
	bool		never;
	Datum		values[12];
	char		nulls[12];
	Datum		result;
	int			i;

	awa_check_writable("awa_schedule");

	for (i = 0; i < lengthof(argnames); i++)
		awa_check_not_null(fcinfo, i, argnames[i]);

	name = PG_GETARG_TEXT_PP(0);
	cron = text_to_cstring(PG_GETARG_TEXT_PP(1));
	tzname = text_to_cstring(PG_GETARG_TEXT_PP(5));
	policy = text_to_cstring(PG_GETARG_TEXT_PP(10));

	awa_check_name(name, "name");
	awa_cron_parse(cron, &spec);
	awa_cron_check_timezone(tzname);

	job.kind = PG_GETARG_TEXT_PP(2);
	job.args = PG_GETARG_JSONB_P(3);
	job.queue = PG_GETARG_TEXT_PP(4);
	job.priority = PG_GETARG_INT32(6);
	job.max_attempts = PG_GETARG_INT32(7);
	job.has_run_at = false;
	job.run_at = 0;
	job.tags = PG_GETARG_ARRAYTYPE_P(8);
	job.metadata = PG_GETARG_JSONB_P(9);
	awa_validate_job(&job);

	if (strcmp(policy, "coalesce") != 0 && strcmp(policy, "catch_up") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("missed_fire_policy must be \"coalesce\" or \"catch_up\", got \"%s\"",
						policy)));

	next = next_fire(&spec, tzname, GetCurrentTransactionStartTimestamp(), &never);
	if (never)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cron expression \"%s\" never fires", cron),
				 errdetail("It has no fire time within ten years.")));

	values[0] = PointerGetDatum(name);
	values[1] = CStringGetTextDatum(cron);
	values[2] = PointerGetDatum(job.kind);
	values[3] = JsonbPGetDatum(job.args);
	values[4] = PointerGetDatum(job.queue);
	values[5] = CStringGetTextDatum(tzname);
	values[6] = Int16GetDatum((int16) job.priority);
	values[7] = Int16GetDatum((int16) job.max_attempts);
	values[8] = PointerGetDatum(job.tags);
	values[9] = JsonbPGetDatum(job.metadata);
	values[10] = CStringGetTextDatum(policy);
	values[11] = TimestampTzGetDatum(next);
	memset(nulls, ' ', sizeof(nulls));

	SPI_connect();
	awa_stmt_run(&stmt, values, nulls, 1);
	if (SPI_processed != 1)
		elog(ERROR, "awa_schedule: upsert: expected 1 row");
	result = awa_row_datum(fcinfo, SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							callercxt);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * awa_unschedule(name) RETURNS boolean
 *
 * Delete a periodic job; false if there was none of that name.  Jobs it
 * already enqueued are not touched.
 */
Datum
awa_unschedule(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_STMT("awa_unschedule: delete", SPI_OK_DELETE,
		"DELETE FROM awa.cron_jobs WHERE name = $1",
		1, TEXTOID);
	Datum		values[1];
	bool		found;

	awa_check_writable("awa_unschedule");

	values[0] = PG_GETARG_DATUM(0);
	SPI_connect();
	awa_stmt_run(&stmt, values, NULL, 0);
	found = (SPI_processed > 0);
	SPI_finish();
	PG_RETURN_BOOL(found);
}

/*
 * awa_pause_schedule(name) RETURNS awa.cron_jobs
 *
 * Stop a periodic job from firing until it is resumed.  P0002 if there is
 * no schedule of that name.
 */
Datum
awa_pause_schedule(PG_FUNCTION_ARGS)
{
	static AwaStmt stmt = AWA_STMT("awa_pause_schedule: update", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.cron_jobs SET paused = true, updated_at = now()"
		" WHERE name = $1 RETURNING *",
		1, TEXTOID);
	MemoryContext callercxt = CurrentMemoryContext;
	Datum		values[1];
	Datum		result;

	awa_check_writable("awa_pause_schedule");

	values[0] = PG_GETARG_DATUM(0);
	SPI_connect();
	awa_stmt_run(&stmt, values, NULL, 0);
	if (SPI_processed == 0)
		schedule_not_found(PG_GETARG_TEXT_PP(0));
	result = awa_row_datum(fcinfo, SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							callercxt);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * awa_resume_schedule(name) RETURNS awa.cron_jobs
 *
 * Let a paused periodic job fire again, from its first fire time after now
 * (the fire times it skipped while paused are not caught up).  Resuming a
 * schedule that is not paused changes nothing.  P0002 if there is no
 * schedule of that name.
 */
Datum
awa_resume_schedule(PG_FUNCTION_ARGS)
{
	static AwaStmt select_stmt = AWA_STMT("awa_resume_schedule: select", SPI_OK_SELECT,
		"SELECT cron, timezone, paused FROM awa.cron_jobs"
		" WHERE name = $1 FOR UPDATE",
		1, TEXTOID);
	static AwaStmt update_stmt = AWA_STMT("awa_resume_schedule: update", SPI_OK_UPDATE_RETURNING,
		"UPDATE awa.cron_jobs SET paused = false, next_fire_at = $2,"
		" updated_at = now() WHERE name = $1 RETURNING *",
		2, TEXTOID, TIMESTAMPTZOID);
	static AwaStmt row_stmt = AWA_STMT("awa_resume_schedule: select", SPI_OK_SELECT,
		"SELECT * FROM awa.cron_jobs WHERE name = $1",
		1, TEXTOID);
	MemoryContext callercxt = CurrentMemoryContext;
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	Datum		result;
	bool		isnull;

	awa_check_writable("awa_resume_schedule");

	values[0] = PG_GETARG_DATUM(0);
	SPI_connect();
	awa_stmt_run(&select_stmt, values, NULL, 0);
	if (SPI_processed == 0)
		schedule_not_found(PG_GETARG_TEXT_PP(0));

	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull)))
	{
		char	   *cron = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *tzname = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		AwaCronSpec spec;
		bool		never;

		awa_cron_parse(cron, &spec);
		values[1] = TimestampTzGetDatum(next_fire(&spec, tzname,
												  GetCurrentTransactionStartTimestamp(),
												  &never));
		nulls[1] = never ? 'n' : ' ';
		awa_stmt_run(&update_stmt, values, nulls, 0);
		if (SPI_processed != 1)
			elog(ERROR, "awa_resume_schedule: update: expected 1 row");
	}
	else
	{
		awa_stmt_run(&row_stmt, values, NULL, 1);
		if (SPI_processed != 1)
			elog(ERROR, "awa_resume_schedule: select: expected 1 row");
	}
	result = awa_row_datum(fcinfo, SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							callercxt);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/* ---------------------------------------------------------------------
 * Firing
 * ---------------------------------------------------------------------
 */

/*
 * The most recent fire time at or before now, given that first_due (a fire
 * time) is at or before now.  Looks back over growing windows so that a
 * schedule missed for a long time costs a handful of steps, not one per
 * missed fire time.
 */
static TimestampTz
latest_due(const AwaCronSpec *spec, const char *tzname, TimestampTz first_due,
		   TimestampTz now)
{
	static const int64 windows[] = {
		USECS_PER_HOUR, USECS_PER_DAY, 32 * USECS_PER_DAY, 367 * USECS_PER_DAY
	};
	TimestampTz t = first_due;
	int			i;

	for (i = 0; i < lengthof(windows); i++)
	{
		TimestampTz from = now - windows[i];
		TimestampTz cand;

		if (from <= first_due)
			break;
		cand = awa_cron_next(spec, tzname, from);
		if (cand <= now)
		{
			t = cand;
			break;
		}
	}
	for (;;)
	{
		TimestampTz n = awa_cron_next(spec, tzname, t);

		if (TIMESTAMP_IS_NOEND(n) || n > now)
			return t;
		t = n;
	}
}

/*
 * Enqueue the job of a schedule row (as read by awa_fire_schedules) for one
 * fire time: available now, run_at the fire time, metadata with "cron" and
 * "fire_time" (UTC, ISO 8601) merged in.
 */
static void
enqueue_fire(HeapTuple row, TupleDesc desc, TimestampTz fire_time)
{
	static AwaStmt meta_stmt = AWA_QUERY("awa: building periodic job metadata",
		"SELECT $1 || jsonb_build_object('cron', $2, 'fire_time',"
		" to_char($3 AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))",
		3, JSONBOID, TEXTOID, TIMESTAMPTZOID);
	Datum		values[3];
	bool		isnull;
	AwaJob		job = {0};
	AwaEnqueue	e;

	values[0] = SPI_getbinval(row, desc, 10, &isnull);
	values[1] = SPI_getbinval(row, desc, 1, &isnull);
	values[2] = TimestampTzGetDatum(fire_time);
	awa_stmt_run(&meta_stmt, values, NULL, 1);
	if (SPI_processed != 1)
		elog(ERROR, "awa: building periodic job metadata: expected 1 row");

	job.metadata = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	job.kind = DatumGetTextPP(SPI_getbinval(row, desc, 4, &isnull));
	job.args = DatumGetJsonbP(SPI_getbinval(row, desc, 5, &isnull));
	job.queue = DatumGetTextPP(SPI_getbinval(row, desc, 6, &isnull));
	job.priority = DatumGetInt16(SPI_getbinval(row, desc, 7, &isnull));
	job.max_attempts = DatumGetInt16(SPI_getbinval(row, desc, 8, &isnull));
	job.tags = DatumGetArrayTypeP(SPI_getbinval(row, desc, 9, &isnull));
	job.has_run_at = true;
	job.run_at = fire_time;
	awa_validate_job(&job);
	awa_enqueue_begin(&e, true);
	awa_enqueue(&e, &job);
	awa_enqueue_end(&e);
}

/*
 * Fire one due schedule: enqueue its job(s) and move next_fire_at on.
 * Returns how many jobs were enqueued; *last is the last fire time.
 */
static int64
fire_one(HeapTuple row, TupleDesc desc, TimestampTz now, int64 budget,
		 TimestampTz *last, TimestampTz *next, bool *never)
{
	char	   *cron = SPI_getvalue(row, desc, 2);
	char	   *tzname = SPI_getvalue(row, desc, 3);
	char	   *policy = SPI_getvalue(row, desc, 11);
	bool		isnull;
	TimestampTz due = DatumGetTimestampTz(SPI_getbinval(row, desc, 12, &isnull));
	AwaCronSpec spec;
	int64		n = 0;

	awa_cron_parse(cron, &spec);
	awa_cron_check_timezone(tzname);

	if (strcmp(policy, "catch_up") == 0)
	{
		int64		limit = Min(budget, AWA_CATCH_UP_MAX);

		while (due <= now && n < limit)
		{
			enqueue_fire(row, desc, due);
			n++;
			*last = due;
			due = next_fire(&spec, tzname, due, never);
			if (*never)
				break;
		}
		*next = due;
	}
	else
	{
		*last = latest_due(&spec, tzname, due, now);
		enqueue_fire(row, desc, *last);
		n = 1;
		*next = next_fire(&spec, tzname, *last, never);
	}
	return n;
}

/* One due schedule to fire (awa_fire_schedules), and what firing it did. */
typedef struct FireArgs
{
	HeapTuple	row;
	TupleDesc	desc;
	char	   *name;
	TimestampTz now;
	int64		budget;			/* jobs it may still enqueue this round */
	int64		n;				/* jobs enqueued */
} FireArgs;

/*
 * Fire one schedule and advance its next_fire_at (awa_run_isolated
 * callback: an error rolls both back).
 */
static void
fire_and_advance(void *arg)
{
	static AwaStmt stmt = AWA_STMT("awa: advancing a schedule", SPI_OK_UPDATE,
		"UPDATE awa.cron_jobs SET next_fire_at = $2,"
		" last_fired_at = coalesce($3, last_fired_at)"
		" WHERE name = $1",
		3, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID);
	FireArgs   *fa = (FireArgs *) arg;
	TimestampTz last = 0;
	TimestampTz next = 0;
	bool		never = false;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	fa->n = fire_one(fa->row, fa->desc, fa->now, fa->budget, &last, &next, &never);
	values[0] = CStringGetTextDatum(fa->name);
	values[1] = TimestampTzGetDatum(next);
	values[2] = TimestampTzGetDatum(last);
	nulls[1] = never ? 'n' : ' ';
	nulls[2] = (fa->n == 0) ? 'n' : ' ';
	awa_stmt_run(&stmt, values, nulls, 0);
}

/*
 * Enqueue the jobs of due, unpaused schedules (see the top of this file).
 * Each schedule is fired in a subtransaction: one that cannot be fired
 * (its row was edited by hand into something invalid) is stopped
 * (next_fire_at NULL) instead of failing the whole maintenance round again
 * and again, and reported to on_failure (maintenance records and logs it),
 * or with a WARNING when on_failure is NULL.  Caller is connected to SPI.
 */
int64
awa_fire_schedules(AwaScheduleFailed on_failure, void *arg)
{
	static AwaStmt due_stmt = AWA_STMT("awa: reading due schedules", SPI_OK_SELECT,
		"SELECT name, cron, timezone, kind, args, queue, priority,"
		" max_attempts, tags, metadata, missed_fire_policy, next_fire_at"
		" FROM awa.cron_jobs WHERE NOT paused AND next_fire_at <= now()"
		" ORDER BY next_fire_at"
		" LIMIT " CppAsString2(AWA_SCHEDULES_PER_ROUND)
		" FOR UPDATE SKIP LOCKED",
		0, InvalidOid);
	static AwaStmt stop_stmt = AWA_STMT("awa: stopping a schedule", SPI_OK_UPDATE,
		"UPDATE awa.cron_jobs SET next_fire_at = NULL"
		" WHERE name = $1",
		1, TEXTOID);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	SPITupleTable *due;
	uint64		ndue;
	uint64		i;
	int64		total = 0;

	awa_stmt_run(&due_stmt, NULL, NULL, 0);
	due = SPI_tuptable;
	ndue = SPI_processed;

	for (i = 0; i < ndue && total < AWA_MAINTAIN_BATCH; i++)
	{
		FireArgs	fa;
		ErrorData  *edata;
		Datum		values[1];

		memset(&fa, 0, sizeof(fa));
		fa.row = due->vals[i];
		fa.desc = due->tupdesc;
		fa.name = SPI_getvalue(fa.row, fa.desc, 1);
		fa.now = now;
		fa.budget = AWA_MAINTAIN_BATCH - total;
		edata = awa_run_isolated(fire_and_advance, &fa);
		if (edata == NULL)
		{
			total += fa.n;
			continue;
		}
		if (on_failure)
			on_failure(fa.name, edata, arg);
		else
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("periodic job \"%s\" was not enqueued and is stopped: %s",
							fa.name, edata->message),
					 errhint("Fix it with awa_schedule(); until then it does not fire.")));
		FreeErrorData(edata);

		values[0] = CStringGetTextDatum(fa.name);
		awa_stmt_run(&stop_stmt, values, NULL, 0);
	}
	return total;
}
