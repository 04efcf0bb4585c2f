/*-------------------------------------------------------------------------
 *
 * ring.h
 *		The ring (ring.c): the storage engine of docs/storage.md beside
 *		awa.jobs, internal and switched off (awa.ring_engine).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_H
#define AWA_RING_H

#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/snapshot.h"

#define RING_LANE_PREFIX	"\001r:"

extern void awa_ring_init(void);

/*
 * The values of ring_insert's statement (ring.c), also handed to the hooks
 * of ring_unique.c and ring_sched.c: $1 kind, $2 args, $3 queue, $4
 * priority, $5 max_attempts, $6 run_at (checked; NULL given: the
 * transaction's start), $7 the id reserved with a unique key (NULL: draw
 * one), $8 the unique key, $9 its states ("01..." text), $10 tags, $11
 * metadata, $12 timeout, $13 group_id, $14 concurrency_key.
 */
#define RING_INSERT_NARGS	14

/*
 * awa_ring_insert_job: enqueue a job read and checked by
 * awa_insert_job_args (awa.h) into the ring: a ready row of the open slot, a
 * scheduled row when due later; returns its id, or for a unique job whose
 * key is held the holder's id (nothing inserted).  0A000 for a job with
 * parents (not on the ring yet), 55000 without an open slot.  The caller
 * checked that the ring may run (awa_ring_check_enabled).
 */
struct AwaJob;
extern int64 awa_ring_insert_job(struct AwaJob *job);

/*
 * awa_ring_insert_job_ex: the same, and says in *fresh whether the id is a
 * new job written just as the job says (no unique key's holder, no
 * parents), whose row the caller may then build from the job itself
 * (engine.c), and in *scheduled whether it waits in awa.scheduled.
 */
extern int64 awa_ring_insert_job_ex(struct AwaJob *job, bool *fresh, bool *scheduled);

/*
 * awa_ring_complete_direct: what awa.ring_complete_many(ids, run_leases)
 * does (ids, run_leases: bigint[] of the same length, else 22023; 55000
 * with awa.ring_engine off), called in C by awa_complete(_many) without a
 * SQL function call (engine.c).  Returns how many attempts it completed.
 */
extern int64 awa_ring_complete_direct(Datum ids, Datum leases);

/*
 * A job's attributes that every row of it carries from attempt to attempt
 * (a ready row, a scheduled row): the columns of awa.ready after slot, id,
 * run_lease, attempt and run_at.  RING_JOB_COLS_OF("r.") names them as
 * columns of r, in the same order.
 */
#define RING_JOB_COLS_OF(p) \
	p "kind, " p "queue, " p "args, " p "priority, " p "max_attempts, " p "created_at, " \
	p "metadata, " p "tags, " p "unique_key, " p "unique_states, " p "timeout, " p "group_id, " \
	p "concurrency_key"
#define RING_JOB_COLS		RING_JOB_COLS_OF("")

/*
 * Shared by the ring's sources (ring*.c).
 *
 * awa_ring_check_enabled: 55000 unless awa.ring_engine is on; fn names the
 *		caller in the message.
 * awa_ring_lane: the floor lane of a ring queue (palloc'd): RING_LANE_PREFIX
 *		followed by the queue's name.
 * awa_ring_pin_planner: switch off every plan node that could scan a whole
 *		relation or materialise one (seq/bitmap scans, sorts, hash/merge
 *		joins, material, JIT); returns the GUC nest level for AtEOXact_GUC.
 * awa_ring_run: run a kept SPI plan with the planner pinned, with the given
 *		snapshot (InvalidSnapshot: the usual one); any SPI result but expect
 *		is an ERROR naming what; returns SPI_processed.
 * awa_ring_check_name: 22023 unless t is 1 to 200 characters long (field
 *		names it in the message).
 */
extern void awa_ring_check_enabled(const char *fn);
extern char *awa_ring_lane(text *queue);
extern int	awa_ring_pin_planner(void);
extern uint64 awa_ring_run(SPIPlanPtr plan, Datum *values, const char *nulls,
						   Snapshot snapshot, bool read_only, int expect,
						   const char *what);
extern void awa_ring_check_name(text *t, const char *field);

/*
 * hook: rclaim -- the queues argument of awa.ring_claim(queues text[], ...)
 * and its blocking form (ring_claim.c): false for NULL (every queue); else
 * the names sorted without duplicates; 22023/22004 for a bad array.
 */
extern bool awa_ring_queues_arg(ArrayType *arr, text ***names, int *n);

/*
 * hook: rclaimx -- the time of a claim of the ring (ring_claim.c).
 * awa_ring_claim_clock: set by awa_claim's attempts on the ring
 * (engine_claim.c) to the clock's time, as awa.jobs' claim takes it (a
 * blocking claim, or awa_claim_wait's attempt after a commit, sees what
 * came due meanwhile); 0: the transaction's start, now().  A queue's rate
 * may move the claim's time later (its reservation's time, ring_flow.c).
 * awa_ring_claim_at: that time, while a claim runs its statements (for
 * ring_sched.c's promotion of due scheduled rows); 0 outside a claim.
 */
extern TimestampTz awa_ring_claim_clock;
extern TimestampTz awa_ring_claim_at;

/*
 * hook: rclaimx -- ring_due.c: how long until the earliest scheduled row
 * of the queue (values[0] text), of the queues (several: text[]) or of
 * every queue (several, nulls[0] 'n') comes due, in ms (-1: none; 0: due
 * already).  Caller is in SPI.
 */
extern long awa_ring_due_ms(Datum *values, const char *nulls, bool several);

/*
 * awa_ring_counting_off: while true, the ring's counting triggers
 * (ring_read.c) count nothing.  ring_slots.c sets it around the carry of a
 * slot's rows into the open slot: the carried rows are the same jobs in the
 * same states, already counted.
 */
extern bool awa_ring_counting_off;
/* ring_dump.c: a COPY into this relation is running (a restore's load): the ring's deriving triggers stand aside */
extern bool awa_ring_restoring(struct RelationData *rel);

/*
 * hook: lease -- ring_fail's logic (ring.c), for the rescue of
 * ring_lease.c: end the attempt (id, run_lease) as failed (retryable while
 * retry and attempts remain; the next attempt due after retry_in, NULL:
 * awa's default backoff), error (jsonb) kept on its done row; returns
 * the state written, *ended false (and nothing written) if that attempt was
 * not running.
 */
extern Datum awa_ring_fail_attempt(Datum id, Datum run_lease, Datum error, bool error_isnull,
								   bool retry, Interval *retry_in, bool *ended);

/*
 * A job's errors on the ring (docs/storage.md, "Step 5: errors and
 * heartbeats on the ring as on the table").  The error of an attempt is its
 * done row's error (jsonb): the error as given (a JSON string, the text, for
 * awa_fail's), or, for a text cut at awa.max_error_bytes, an object with
 * the keys "error", "truncated" and "error_bytes" (AWA_RING_ERROR_MARKED_SQL):
 * the view's entry is then {"attempt", "error", "at"} merged with the
 * object's marks, key for key awa.jobs' entry.  An error dropped by
 * awa.max_errors_kept is the JSON false: its done row stays (the end of its
 * attempt), the view's errors pass it over.
 *
 * AWA_RING_ERROR_SQL: the done row's error for an error text TEXT (a text
 * expression) cut to awa.max_error_bytes, BYTES its original length (int8,
 * NULL when not cut), as awa_error_arg gives them.
 * AWA_RING_ERROR_MARKED_SQL: whether a done row's error X is such an
 * object.
 * AWA_RING_ERROR_OF_ENTRY_SQL: the done row's error for an entry E of
 * awa.jobs' errors (a job moved into the ring, or revived from the
 * history): its error and its marks.
 * AWA_RING_ERROR_ROW_SQL: whether done row D is an entry of its job's
 * errors (the view, src/sql/awa.sql, states the same).
 */
#define AWA_RING_ERROR_SQL(TEXT, BYTES) \
	"CASE WHEN " BYTES " IS NULL THEN to_jsonb(" TEXT ")" \
	" ELSE jsonb_build_object('error', " TEXT ") || " AWA_ERROR_MARKS_SQL(BYTES) " END"
#define AWA_RING_ERROR_MARKED_SQL(X) \
	"(jsonb_typeof(" X ") = 'object' AND " X " ?& '{error,truncated,error_bytes}'::text[])"
#define AWA_RING_ERROR_OF_ENTRY_SQL(E) \
	"CASE WHEN jsonb_typeof(" E ") = 'object' AND " E " ? 'truncated' AND " E " ? 'error_bytes'" \
	" THEN jsonb_build_object('error', " E " -> 'error', 'truncated', " E " -> 'truncated'," \
	"  'error_bytes', " E " -> 'error_bytes')" \
	" ELSE nullif(" E " -> 'error', 'null') END"
#define AWA_RING_ERROR_ROW_SQL(D) \
	"(" D ".state IN ('retryable', 'failed') OR (" D ".state = 'cancelled' AND " D ".error IS NOT NULL))" \
	" AND " D ".error IS DISTINCT FROM 'false'::jsonb"

/*
 * awa_ring_errors_bound: after a new error of job id was written (a done
 * row), bound its errors as awa.jobs' are (AWA_ERRORS_SQL, awa.h): the
 * newest awa.max_errors_kept stay, older ones are dropped (error false),
 * and a kept one longer than awa.max_error_bytes is cut (AWA_ERROR_CUT_SQL).
 * Caller is in SPI.
 */
extern void awa_ring_errors_bound(Datum id);

/*
 * hook: rext -- ring_ext.c's end of a parked attempt's wait by awa.ring_cancel
 * (ring_sched.c), set by awa_ring_ext_init (from _PG_init), so that
 * ring_sched.c does not name ring_ext.c's functions.  values: the slot, id
 * and lease of the job's newest ready row (the attempt is (id, lease + 1)).
 * Returns 1 when it cancelled a parked attempt, 0 when that attempt is not
 * parked, -1 when another transaction ended its wait first (look again).
 * Caller is in SPI.
 */
extern int	(*awa_ring_ext_cancel_parked) (Datum *values);
extern void awa_ring_ext_init(void);

#endif							/* AWA_RING_H */
