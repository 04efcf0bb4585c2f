/*-------------------------------------------------------------------------
 *
 * awa.h
 *		Declarations shared by the C files of the awa job queue.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_H
#define AWA_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "job_state.h"

/* Limits of the data model (also enforced by CHECK constraints). */
#define AWA_MAX_NAME_CHARS		200
#define AWA_MIN_PRIORITY		1
#define AWA_MAX_PRIORITY		4
#define AWA_MAX_ATTEMPTS		1000
#define AWA_MAX_TAGS			20
/* AWA_DEFAULT_UNIQUE_STATES, AWA_LIVE_UNIQUE_STATES: job_state_sql.h */
#define AWA_MAX_QUEUE_LIMIT		1000000	/* awa.queue_meta.max_running */
#define AWA_MAX_INSERT_MANY		10000	/* jobs per awa_insert_many call */

/*
 * Settings: each part defines its own in its init function, which _PG_init
 * (awa.c) calls.
 */
extern bool awa_notify;			/* notify.c */
extern int	awa_priority_aging_interval;	/* claim.c */
extern int	awa_heartbeat_timeout;	/* job.c */
extern int	awa_max_error_bytes;	/* job.c */
extern int	awa_max_errors_kept;	/* job.c */
extern void awa_notify_init(void);
extern void awa_claim_init(void);
extern void awa_job_init(void);
extern Datum awa_heartbeat_timeout_param(Interval *buf);

/* A unique job's key and the states it holds it in (unique.c). */
typedef struct AwaUnique
{
	bytea	   *key;			/* awa_unique_key */
	bytea	   *legacy;			/* the key an earlier awa built, or NULL */
	char		bits[9];		/* unique_states as '0'/'1' text */
} AwaUnique;

/* A job as awa_insert receives it (insert.c). */
typedef struct AwaJob
{
	text	   *kind;
	text	   *queue;
	Jsonb	   *args;
	int32		priority;
	int32		max_attempts;
	bool		has_run_at;
	TimestampTz run_at;
	ArrayType  *tags;
	Jsonb	   *metadata;
	Interval   *timeout;		/* hard limit of one attempt, or NULL (0.3.0) */
	text	   *group_id;		/* the group it belongs to, or NULL (groups.c) */
	text	   *concurrency_key;	/* per-key limit's key, or NULL (keylimit.c) */
	AwaUnique  *unique;			/* NULL: not a unique job */
	struct AwaDeps *deps;		/* NULL: runs after no job (deps.c) */
} AwaJob;

/* grouplock.c: a group's advisory locks (groups.c says what they order) */
#define AWA_GROUP_ENQUEUE_LOCK	0x61776701	/* first key; the second: a hash */
#define AWA_GROUP_FINISH_LOCK	0x61776702
extern void awa_group_lock(uint32 space, const char *group_id, int len, int mode);
extern void awa_group_lock_enqueue(text *group_id);

/*
 * job_args.c: read and check awa_insert's arguments (its signature; also
 * awa.ring_insert's) into *job; errors before anything is written.
 */
extern void awa_insert_job_args(FunctionCallInfo fcinfo, AwaJob *job);

/*
 * engine.c: the awa_* functions on the ring (docs/storage.md, "Step 5: how
 * the switch lands").  awa_engine_ring: whether this database keeps its
 * jobs in the ring (awa.jobs is its view).  awa_engine_insert:
 * awa_insert on the ring: the job's row, of fcinfo's result type;
 * awa_engine_insert_many: awa_insert_many's, the rows in input order.
 */
extern bool awa_engine_ring(void);
extern Datum awa_engine_insert(AwaJob *job, FunctionCallInfo fcinfo);
extern Datum awa_engine_insert_many(AwaJob *jobs, int n, FunctionCallInfo fcinfo);

/*
 * awa_engine_claimed_rows: the rows (awa.jobs' columns, in order) of the n
 * jobs a ring claim just took (ids[i], their attempts' run_leases
 * leases[i]), in that order, copied into cxt as tuples[i] with descs[i].  A
 * batch of first attempts only is read from the receipts and ready rows (two
 * index probes a job), any other through awa.ring_live_jobs.  Caller is in
 * SPI.
 */
extern void awa_engine_claimed_rows(const int64 *ids, const int64 *leases, int n, MemoryContext cxt,
									HeapTuple *tuples, TupleDesc *descs);

/*
 * The other awa_* functions on the ring, called with their arguments
 * checked by the function itself (its errors come first, as on awa.jobs):
 * awa_engine_cancel and awa_engine_retry (SETOF rows: the job, or none),
 * complete (whether it completed) and complete_many (the number completed;
 * with results: engine_deps.h), fail (error as awa_error_arg cut it,
 * error_bytes its original length or -1; the state, *isnull for a stale
 * lease), snooze and progress (false for a stale lease), heartbeat (int8[]:
 * the ids not running under their lease, in order).
 */
extern Datum awa_engine_cancel(FunctionCallInfo fcinfo, Datum id);
extern Datum awa_engine_retry(FunctionCallInfo fcinfo, Datum id);
extern bool awa_engine_complete(Datum id, Datum lease);
extern int64 awa_engine_complete_many(Datum ids, Datum leases);
extern Datum awa_engine_fail(Datum id, Datum lease, text *error, int64 error_bytes,
							 Interval *retry_in, bool terminal, bool *isnull);
extern bool awa_engine_snooze(Datum id, Datum lease, Interval *delay);
extern Datum awa_engine_heartbeat(Datum ids, Datum leases);
extern bool awa_engine_progress(Datum id, Datum lease, Datum progress);

/*
 * awa_engine_call: the ring's function of the same arguments and result as
 * the calling awa_* function (sql: "SELECT awa.ring_x($1, ...)", the
 * caller's first nargs arguments of types; byval/len: the result type's),
 * its result returned as the caller's (NULL as NULL).  cache keeps the plan.
 */
extern Datum awa_engine_call(FunctionCallInfo fcinfo, SPIPlanPtr *cache, const char *sql, int nargs,
							 const Oid *types, bool byval, int len);

/* validate.c */
extern int	awa_max_args_bytes;
extern void awa_validate_init(void);
extern void awa_check_name(text *value, const char *field);
extern void awa_validate_job(AwaJob *job);
extern void awa_check_jsonb_size(Jsonb *value, const char *field);
extern int64 awa_interval_usecs(Interval *iv);

/*
 * Largest delay an interval argument may ask for (retry_in, delay; the same
 * cap suits lease, wait, unique_period): 36500 days, a month counting as 30
 * days.  Each field of the interval is bounded too, so now() + it never
 * overflows a timestamp.
 */
#define AWA_MAX_DELAY_DAYS		36500

/*
 * Default backoff: 2^attempt seconds, the base capped at 19.2 hours, times
 * 1 to 1.25 (jitter), so at most 24 hours.  Capping the base rather than
 * the result keeps the jitter at the cap: jobs that fail together at high
 * attempts still spread over 19.2 to 24 hours instead of all retrying
 * exactly 24 hours later.  (job.c; the ring's retries, ring_sched.c.)
 */
#define AWA_BACKOFF_BASE_CAP	69120	/* seconds; 86400 / 1.25 */

/* The time a job retries at after the default backoff, after attempt ATTEMPT. */
#define AWA_BACKOFF_SQL(ATTEMPT) \
	"now() + make_interval(secs => least(power(2, " ATTEMPT "), " \
	CppAsString2(AWA_BACKOFF_BASE_CAP) ") * (1 + 0.25 * random()))"
extern int64 awa_check_delay(Interval *iv, const char *name, bool positive);

/* unique.c */
extern void awa_check_unique_period(int64 us);
extern void awa_check_unique_states(const char *bits);
extern bytea *awa_unique_key(text *kind, text *queue, Jsonb *args,
							 int64 period_us, TimestampTz run_at, bytea **legacy);
extern bytea *awa_unique_key_args(FunctionCallInfo fcinfo,
								  void (*check_name) (text *name, const char *field),
								  bytea **legacy);
extern void awa_job_set_unique(AwaJob *job, bool by_args, bool by_queue,
							   int64 period_us, const char *bits);
extern int64 awa_unique_period_arg(FunctionCallInfo fcinfo, int argno);
extern void awa_unique_states_bits(ArrayType *states, char *bits);

/* enqueue.c: the one enqueue path */
typedef struct AwaJobColumns	/* where a job row's enqueue columns are */
{
	Oid			rowtype;		/* the row type they were found in */
	int			kind;			/* 0-based attribute numbers */
	int			queue;
	int			args;
	int			state;
	int			priority;
	int			max_attempts;
	int			run_at;
	int			tags;
	int			metadata;
	int			timeout;		/* -1 before 0.3.0 */
	int			group_id;		/* -1 without groups (groups.c) */
	int			concurrency_key;	/* -1 without per-key limits */
	Datum		states[AWA_NUM_JOB_STATES]; /* each state's value */
} AwaJobColumns;

typedef struct AwaEnqueue		/* awa_enqueue's state and last row */
{
	bool		in_spi;			/* the caller is connected to SPI */
	bool		connected;		/* awa_enqueue connected to SPI */
	TupleTableSlot *slot;		/* the row, written directly */
	HeapTuple	tuple;			/* or the row, written through SPI */
	TupleDesc	desc;
	bool		inserted;		/* the row is new (not a unique key's holder) */
} AwaEnqueue;

/* jobrow.c */
/* The 0-based number of the column name of a row type desc (-1: none, or dropped). */
extern int	awa_column_if_any(TupleDesc desc, const char *name);
extern int	awa_job_column(TupleDesc desc, const char *name);
extern void awa_job_columns(TupleDesc desc, AwaJobColumns *cols);
extern AwaJobState awa_job_row(const AwaJob *job, const AwaJobColumns *cols,
							   Datum *values, bool *nulls);
extern AwaJobState awa_job_row_values(const AwaJob *job, const AwaJobColumns *cols,
									  Datum *values, bool *nulls);

/* enqueue.c */
extern void awa_enqueue_begin(AwaEnqueue *e, bool in_spi);
extern void awa_enqueue(AwaEnqueue *e, AwaJob *job);
extern Datum awa_enqueued_datum(AwaEnqueue *e, FunctionCallInfo fcinfo,
								MemoryContext cxt);
extern void awa_enqueued_put(AwaEnqueue *e, FunctionCallInfo fcinfo);
extern void awa_enqueue_end(AwaEnqueue *e);
extern void awa_enqueue_many(AwaJob *jobs, int n, FunctionCallInfo fcinfo);

/*
 * counters.c: the job counters (awa.counter_deltas, folds) behind
 * awa_queue_stats
 */
extern void awa_counters_init(void);
extern void awa_counters_note_insert(const char *queue, AwaJobState state);
extern int64 awa_counters_fold(void);

/* fastinsert.c */
extern TupleTableSlot *awa_fast_insert_slot(AwaJob *job);

/* jobs_json.c */
extern AwaJob *awa_jobs_from_json(Jsonb *jobs, int *n);

/*
 * job.c: every change of a job's state, with its wake-ups and NOTIFYs
 * (caller is in SPI).
 */
extern AwaJobState awa_job_initial_state(const AwaJob *job);
extern void awa_job_enqueued(const char *queue, AwaJobState state,
							 TimestampTz run_at);
extern void awa_queue_opened(const char *queue, bool limit_gone);
extern char *awa_job_claim_sql(int level, bool skip_limited, bool leases, bool keys);
extern char *awa_job_claim_tids_sql(bool leases, bool keys);
extern bool awa_job_complete(Datum job_id, Datum run_lease);
extern int64 awa_job_complete_many(Datum ids, Datum leases);
extern bool awa_job_fail(Datum job_id, Datum run_lease, text *error,
						 int64 error_bytes, Interval *retry_in, bool terminal,
						 Datum *state);
extern bool awa_job_snooze(Datum job_id, Datum run_lease, Interval *delay);
extern int64 awa_rescue_jobs(Datum skip_ids);
extern int64 awa_rescue_job(int64 job_id);
extern uint64 awa_job_cancel(Datum job_id);
extern uint64 awa_job_cancel_by_key(Datum key, Datum legacy);
extern int64 awa_job_drain(Datum queue);
extern uint64 awa_job_retry(Datum job_id);
extern uint64 awa_job_retry_failed(Datum *kind_queue, const char *nulls);
extern int64 awa_job_discard_failed(Datum kind, bool kind_isnull);
extern int64 awa_job_promote(Datum skip);
extern SPIPlanPtr awa_job_promote_candidates_plan(void);
extern int64 awa_job_promote_one(int64 id);
extern bool awa_job_complete_result(Datum job_id, Datum run_lease, Datum result);
extern int64 awa_job_complete_many_results(Datum ids, Datum leases, Datum results);
extern bool awa_job_wait_external(Datum job_id, Datum run_lease);
extern bool awa_job_complete_external(Datum callback_id, Datum payload,
									  bool payload_isnull);
extern bool awa_job_fail_external(Datum callback_id, text *error,
								  int64 error_bytes, Datum payload,
								  bool payload_isnull);
extern bool awa_job_retry_external(Datum callback_id, Datum payload,
								   bool payload_isnull, Interval *retry_in,
								   Datum *state);
extern int64 awa_job_callback_timeouts(Datum skip);
extern int64 awa_job_callback_timeout_one(int64 id);
extern SPIPlanPtr awa_job_callback_timeout_candidates_plan(void);

/*
 * Whether a job (its state STATE as of a lock; J the row) still waits for
 * the callback registered on it: parked in waiting_external, or running
 * under the lease the callback was registered with (job.c: a callback that
 * comes before the job parked acts at once).
 */
#define AWA_CALLBACK_WAITS_SQL(STATE, J) \
	"(" STATE " = 'waiting_external' OR (" STATE " = 'running'" \
	" AND " J ".run_lease = " J ".callback_lease))"

/*
 * The job of callback id ID (a uuid parameter): awa stores only the id's
 * SHA-256, callback_key, so that reading awa.jobs does not reveal it.
 */
#define AWA_CALLBACK_KEY_SQL(ID) "callback_key = sha256(uuid_send(" ID "))"

/* worker.c: an error text cut to awa.max_error_bytes (see awa_fail) */
extern text *awa_error_arg(Datum error, int64 *error_bytes);

/*
 * An entry of a job's errors, shared by awa.jobs (job.c) and the ring
 * (ring.c, ring_ext.c), so that both build it key for key.
 *
 * AWA_ERROR_MARKS_SQL: the marks of an error text cut at
 * awa.max_error_bytes (BYTES: its original length, an int8 expression, NULL
 * when not cut): '{}', or {"truncated": true, "error_bytes": BYTES}.
 *
 * AWA_ERROR_CUT_SQL: the entry E (a jsonb object with key "error") with an
 * error text longer than MAX_BYTES cut at a character boundary: the longest
 * prefix of at most MAX_BYTES characters if that fits, else one of CHARS
 * characters (MAX_BYTES / the encoding's longest character), which always
 * fits; a cut entry gets "truncated": true and "error_bytes": its original
 * length (kept if it had one).  E unchanged when it fits.
 */
#define AWA_ERROR_MARKS_SQL(BYTES) \
	"CASE WHEN " BYTES " IS NULL THEN '{}'::jsonb" \
	" ELSE jsonb_build_object('truncated', true, 'error_bytes', " BYTES ") END"
#define AWA_ERROR_CUT_SQL(E, MAX_BYTES, CHARS) \
	"CASE WHEN coalesce(octet_length(" E "->>'error'), 0) <= " MAX_BYTES \
	"   THEN " E " ELSE " E " || jsonb_build_object('error', CASE" \
	"     WHEN octet_length(left(" E "->>'error', " MAX_BYTES ")) <= " MAX_BYTES \
	"     THEN left(" E "->>'error', " MAX_BYTES ") ELSE left(" E "->>'error', " CHARS ") END," \
	"     'truncated', true) || CASE WHEN " E " ? 'error_bytes' THEN '{}'::jsonb" \
	"     ELSE jsonb_build_object('error_bytes', octet_length(" E "->>'error')) END END"

/*
 * AWA_ERRORS_SQL: the new errors of a job: its newest entries, at most
 * KEEP_OLD of them (awa.max_errors_kept - 1), then the entry NEW.  A kept
 * entry whose error text is longer than MAX_BYTES (awa.max_error_bytes) --
 * written before the bound existed or under a larger one -- is cut the way
 * awa_fail cuts a new one (AWA_ERROR_CUT_SQL; the ring cuts its own with it
 * too).  KEEP_OLD, MAX_BYTES and CHARS are int4 expressions, usually the
 * parameters awa_errors_bounds gives; NEW is already cut.  Entries are read
 * once per append; the history is bounded, so is that.
 *
 * AWA_ERRORS_APPEND_SQL: the same for a statement that takes no bounds as
 * parameters (a claim failing a row it cannot take): the bounds are read
 * from the settings when it runs, and NEW is cut too.  Every append to
 * awa.jobs' errors goes through one of the two.
 */
#define AWA_ERRORS_SQL(ERRORS, KEEP_OLD, MAX_BYTES, CHARS, NEW) \
	"coalesce((SELECT array_agg(" AWA_ERROR_CUT_SQL("x.e", MAX_BYTES, CHARS) " ORDER BY x.i)" \
	"  FROM unnest(" ERRORS ") WITH ORDINALITY AS x(e, i)" \
	"  WHERE x.i > cardinality(" ERRORS ") - " KEEP_OLD "), '{}') || (" NEW ")"
/* awa.max_error_bytes in bytes: its text has a unit ("8kB", "64B"; pg_size_bytes takes no "B") */
#define AWA_ERROR_BYTES_SETTING_SQL \
	"pg_catalog.pg_size_bytes(pg_catalog.regexp_replace(" \
	"pg_catalog.current_setting('awa.max_error_bytes'), '([0-9])B$', '\\1'))::int4"
#define AWA_ERRORS_APPEND_SQL(ERRORS, NEW) \
	"(SELECT array_agg(" AWA_ERROR_CUT_SQL("x.e", AWA_ERROR_BYTES_SETTING_SQL, \
		"(" AWA_ERROR_BYTES_SETTING_SQL " / pg_catalog.pg_encoding_max_length(" \
		"pg_catalog.pg_char_to_encoding(pg_catalog.getdatabaseencoding())))") " ORDER BY x.i)" \
	"  FROM unnest(coalesce(" ERRORS ", '{}') || (" NEW ")) WITH ORDINALITY AS x(e, i)" \
	"  WHERE x.i > cardinality(coalesce(" ERRORS ", '{}')) + 1" \
	"   - pg_catalog.current_setting('awa.max_errors_kept')::int4)"

/*
 * job.c: the bounds of a job's errors as three int4 parameters: values[0]
 * awa.max_errors_kept - 1 (the older entries kept beside a new one),
 * values[1] awa.max_error_bytes, values[2] the characters that always fit
 * in it (see AWA_ERROR_CUT_SQL).
 */
extern void awa_errors_bounds(Datum *values);

/*
 * Lock the jobs of the (ids $1, leases $2) pairs in id order, whatever the
 * order of the arrays, and return their id and state as of the lock.  Every
 * statement of awa that locks several jobs does so in id order, so that two
 * of them never wait for each other in a cycle (deadlock, 40P01).
 *
 * The state is checked by the caller, after the lock, not here: with
 * "state = 'running'" in this join the planner may read the running jobs
 * through jobs_running_idx and compare each with every array element, which
 * is quadratic (a batch of 1,000 with 3,000 jobs running: 3 million
 * comparisons, 0.37 s).  Without it the jobs are found through the primary
 * key.  A job locked needlessly (same lease, no longer running) is one this
 * worker held; the lock ends with the transaction.
 */
#define AWA_LOCK_BY_ID_LEASE_SQL \
	"SELECT j.id, j.state FROM unnest($1, $2) AS u(id, lease)" \
	" JOIN awa.jobs j ON j.id = u.id AND j.run_lease = u.lease" \
	" ORDER BY j.id FOR NO KEY UPDATE OF j"

/* stmt.c: the SPI statement layer */
#define AWA_STMT_MAX_ARGS		12
#define AWA_SPI_OK_ANY			(-1000)	/* expect: any SPI_OK_* result */
typedef struct AwaStmt
{
	const char *name;			/* names it in errors */
	const char *sql;
	int			expect;			/* the SPI_OK_* result it must give */
	int			nargs;
	Oid			argtypes[AWA_STMT_MAX_ARGS];	/* built-in types only */
	bool		read_only;		/* run with read_only (no CommandCounterIncrement) */
	int			cursor_options; /* 0: a generic plan */
	SPIPlanPtr	plan;			/* prepared at its first run, kept */
} AwaStmt;

/* Declare a statement: AWA_STMT(name, expect, sql, nargs, argtypes...) */
#define AWA_STMT(NAME, EXPECT, SQL, NARGS, ...) \
	{(NAME), (SQL), (EXPECT), (NARGS), {__VA_ARGS__}, false, 0, NULL}
/* The same, run read-only (a SELECT that changes nothing). */
#define AWA_QUERY(NAME, SQL, NARGS, ...) \
	{(NAME), (SQL), SPI_OK_SELECT, (NARGS), {__VA_ARGS__}, true, 0, NULL}

extern SPIPlanPtr awa_plan(SPIPlanPtr *cache, const char *sql, int nargs,
						   const Oid *argtypes);
extern SPIPlanPtr awa_plan_opts(SPIPlanPtr *cache, const char *sql, int nargs,
								const Oid *argtypes, int cursor_options);
extern uint64 awa_stmt_run(AwaStmt *stmt, Datum *values, const char *nulls,
						   long tcount);
extern Datum awa_stmt_value(uint64 row, const char *column, bool *isnull);
extern int64 awa_stmt_int8(uint64 row, const char *column);
extern bool awa_stmt_bool(uint64 row, const char *column);

/* spi_util.c */
extern Datum awa_job_datum(HeapTuple tuple, TupleDesc spidesc,
						   TupleDesc jobdesc, MemoryContext cxt);
extern void awa_store_jobs(FunctionCallInfo fcinfo, SPITupleTable *tuptable,
						   uint64 ntuples, const int *order);
extern void awa_put_job(FunctionCallInfo fcinfo, HeapTuple tuple,
						TupleDesc spidesc);
extern int	awa_execute_prepared(SPIPlanPtr plan, Datum *values,
								 const char *nulls, long tcount);
extern Datum awa_row_datum(FunctionCallInfo fcinfo, HeapTuple tuple,
						   TupleDesc spidesc, MemoryContext cxt);
extern void awa_job_not_found(int64 job_id);
extern void awa_check_writable(const char *fn);
extern ErrorData *awa_run_isolated(void (*fn) (void *), void *arg);

/*
 * spi_util.c: throw edata (copied, the error state flushed) again without
 * the context lines of awa's statement sql and of what ran inside it.
 */
extern void awa_rethrow_outside_statement(ErrorData *edata, const char *sql) pg_attribute_noreturn();
extern void awa_check_not_null(FunctionCallInfo fcinfo, int argno,
							   const char *name);

/* schema.c: what the installed tables have (see docs/releasing.md) */
typedef enum AwaSchemaFeature
{
	AWA_SCHEMA_QUEUE_LIMITS = 1 << 0,	/* 0.2.0: awa.queue_meta.max_running */
	AWA_SCHEMA_LEASES = 1 << 1, /* 0.3.0: awa.jobs.lease and timeout */
	AWA_SCHEMA_ROUNDS = 1 << 2, /* 0.3.0: awa.maintenance_rounds */
	AWA_SCHEMA_EXTERNAL = 1 << 3,	/* 0.3.0: awa.jobs.result, callback_* */
	AWA_SCHEMA_COUNTERS = 1 << 4,	/* 0.3.0: awa.counter_deltas and folds */
	AWA_SCHEMA_QUEUE_RATES = 1 << 5,	/* 0.3.0: awa.queue_meta.rate_max_claims (ratelimit.c) */
	AWA_SCHEMA_GROUPS = 1 << 6,	/* 0.3.0: awa.jobs.group_id, awa.group_callbacks */
	AWA_SCHEMA_DEPENDENCIES = 1 << 7,	/* 0.3.0: awa.job_dependencies, dependent_jobs */
	AWA_SCHEMA_KEYS = 1 << 8,	/* 0.3.0: awa.jobs.concurrency_key, awa.key_limits */
	AWA_SCHEMA_KEY_RATES = 1 << 9,	/* 0.3.0: awa.key_limits.rate_max_claims (keylimit.c) */
	AWA_SCHEMA_RING_ENGINE = 1 << 10	/* awa.jobs is the ring's view (src/sql/engine.sql) */
} AwaSchemaFeature;
extern int	awa_schema_features(void);
extern bool awa_schema_has(int f);
extern void awa_require_schema(int f, const char *what);

/* dbstate.c: who maintains each database (shared memory, when preloaded) */
#define AWA_MAX_DATABASES		512 /* databases the launcher follows */
typedef enum AwaDbStatus
{
	AWA_DB_UNKNOWN = 0,			/* the launcher has not looked yet */
	AWA_DB_NO_AWA,				/* the extension is not installed */
	AWA_DB_WORKER,				/* a maintenance worker runs there */
	AWA_DB_NO_SLOT,				/* no background worker slot was free */
	AWA_DB_NOT_LISTED,			/* left out by awa.databases */
	AWA_DB_UNREACHABLE			/* does not allow connections */
} AwaDbStatus;

typedef struct AwaDbInfo
{
	AwaDbStatus status;
	int			worker_pid;
	TimestampTz last_round;		/* 0: no round recorded since start */
	TimestampTz status_at;
	bool		launcher_running;
} AwaDbInfo;

extern void awa_dbstate_init(void);
extern bool awa_dbstate_set(Oid dboid, AwaDbStatus status, int pid);
extern void awa_dbstate_forget(Oid dboid);
extern void awa_dbstate_launcher(int pgprocno);
extern AwaDbStatus awa_dbstate_status(Oid dboid, bool *recheck);
extern void awa_dbstate_clear_recheck(Oid dboid);
extern bool awa_dbstate_round_finished(TimestampTz at);
extern bool awa_dbstate_get(AwaDbInfo *info);

/* maintain.c */
extern int	awa_maintenance_interval;	/* ms */
extern void awa_maintain_init(void);

/* spi_util.c: set while awa's own INSERT of prepared rows runs */
extern bool awa_rows_prepared;

/* shmem.c (see shmem.h) */
extern void awa_shmem_init(void);
extern void awa_set_maintainer_pid(int pid);
extern void awa_set_maintained(TimestampTz at);
extern void awa_get_maintainer(TimestampTz *last_run, int *pid);
extern bool awa_preloaded(void);

/* notify.c */
/* NOTIFY channels: a queue's, a queue's too long for that, awa's own */
#define AWA_QUEUE_CHANNEL_PREFIX	"awa:"	/* + queue name, if it fits */
#define AWA_HASHED_CHANNEL_PREFIX	"awa#"	/* + MD5 hex of the queue name */
#define AWA_OWN_CHANNEL_PREFIX		"awa."
#define AWA_CANCEL_CHANNEL			"awa.cancel"
extern void awa_notify_queue(const char *queue);
extern void awa_notify_cancel(int64 job_id, int64 run_lease);
extern void awa_queue_channel(const char *queue, char *channel);
extern bool awa_channel_is_ours(const char *channel);

/* wake.c */
extern void awa_job_available(const char *queue);
extern void awa_job_scheduled(const char *queue);
extern void awa_wake_init(void);
extern bool awa_wait_register(const char *queue);
extern bool awa_wait_register_many(const char *const *queues, int n);
extern void awa_wait_attempt(void);
extern bool awa_wait_woken(void);
extern long awa_wait_before_sleep(long due_ms);
extern void awa_wait_unregister(void);
extern void awa_wait_at_limit(bool at_limit);
extern void awa_claim_begins(const char *queue);
extern void awa_claim_ends(int n, bool full);
extern void awa_claim_noted(const char *queue, int n);
extern void awa_claim_attempt_empty(void);
extern void awa_running_freed(void);
/* hook: rwait -- the ring's lanes (ring_wait.c) in wake.c's machinery */
extern void awa_lane_available(const char *lane, bool available);
extern bool awa_wait_register_lane(const char *lane);
extern bool awa_wait_register_lanes(const char *const *lanes, int n);	/* hook: rclaim */
extern void awa_lane_claim_noted(const char *lane, int n);	/* hook: rclaim */
extern void awa_lane_claim_begins(const char *lane);
extern void awa_wait_sleep(long timeout_ms, bool registered);

#endif							/* AWA_H */
