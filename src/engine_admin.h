/*-------------------------------------------------------------------------
 *
 * engine_admin.h
 *		The administration functions on the ring engine (engine_admin.c),
 *		and engine.c's statement runners they use.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_ENGINE_ADMIN_H
#define AWA_ENGINE_ADMIN_H

#include "fmgr.h"
#include "executor/spi.h"

/*
 * engine.c's (hook: radmin).  awa_engine_rows: run a kept statement (cache,
 * sql: nargs parameters of types; nulls as SPI's, NULL: none) whose rows'
 * first column is a job id, in the order of the result, and return the
 * ring's row of each as fcinfo's materialized SETOF awa.jobs.
 * awa_engine_value: run it and return its first column of its first row
 * copied out of SPI (*isnull; no row: NULL); byval/len: that type's.  Both
 * call SPI themselves (call them outside SPI).
 */
extern Datum awa_engine_rows(FunctionCallInfo fcinfo, SPIPlanPtr *cache, const char *sql, int nargs,
							 const Oid *types, Datum *values, const char *nulls);
extern Datum awa_engine_value(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *types,
							  Datum *values, const char *nulls, bool byval, int len, bool *isnull);

/*
 * The awa_* functions on the ring engine, called after their arguments were
 * checked (see engine_admin.c), outside SPI.
 *
 * awa_engine_retry_failed: awa_retry_failed's rows (SETOF, by id); kind_queue
 *		and nulls: kind ($1, NULL: every kind) and queue ($2, NULL: any).
 * awa_engine_discard_failed: awa_discard_failed's count; kind NULL
 *		(kind_isnull): every kind.
 * awa_engine_drain: awa_drain_queue's count.
 * awa_engine_cancel_by_unique_key: awa_cancel_by_unique_key's rows (fcinfo's
 *		arguments, checked).
 * awa_engine_rescue: awa_rescue's count (at most AWA_ENGINE_RESCUE_BATCH
 *		attempts, as awa_rescue_jobs on the table).
 * awa_engine_table_step_skipped: whether a step of the maintenance round
 *		that works on awa.jobs' table (of_table: promotion, rescue, retention,
 *		external-wait timeouts) is skipped: in a database on the ring engine,
 *		where the ring's own steps do them.
 * awa_engine_get_job: awa_get_job's row (fcinfo's result type); P0002 when
 *		the ring holds no job id.
 */
extern Datum awa_engine_retry_failed(FunctionCallInfo fcinfo, Datum *kind_queue, const char *nulls);
extern int64 awa_engine_discard_failed(Datum kind, bool kind_isnull);
extern int64 awa_engine_drain(Datum queue);
extern Datum awa_engine_cancel_by_unique_key(FunctionCallInfo fcinfo);
#define AWA_ENGINE_RESCUE_BATCH 5000
extern int64 awa_engine_rescue(void);
extern bool awa_engine_table_step_skipped(bool of_table);
extern Datum awa_engine_get_job(FunctionCallInfo fcinfo, Datum id);

/*
 * hook: rjit -- RING_JOB_STATE_SQL(ID): a subquery of one row (none: the
 * slots and awa.scheduled hold no such job) of the job whose id is the SQL
 * expression ID: id, kind, queue, concurrency_key, unique_key,
 * unique_states, state -- the state as
 * awa.ring_live_jobs derives it (the done row of the newest attempt, the
 * one after a wait first; else its receipt: running; else available; a
 * row of awa.scheduled never made ready: its own), read by index probes
 * only, without the view's other columns.  For LATERAL over many ids.
 */
#define RING_JOB_STATE_SQL(ID) \
	"(SELECT r.id, r.kind, r.queue, r.concurrency_key, r.unique_key, r.unique_states," \
	"   CASE WHEN d.state IS NOT NULL THEN d.state" \
	"    WHEN EXISTS (SELECT 1 FROM awa.claims c WHERE c.job_id = r.id AND c.run_lease = r.run_lease + 1" \
	"     AND c.slot = r.slot) THEN 'running'::awa.job_state" \
	"    ELSE 'available'::awa.job_state END AS state" \
	"  FROM (SELECT r.id, r.run_lease, r.slot, r.kind, r.queue, r.concurrency_key, r.unique_key," \
	"   r.unique_states FROM awa.ready r" \
	"   WHERE r.id = " ID " ORDER BY r.run_lease DESC LIMIT 1) r" \
	"  LEFT JOIN LATERAL (SELECT d.state FROM awa.done d WHERE d.job_id = r.id" \
	"   AND d.run_lease = r.run_lease + 1 AND d.slot = r.slot ORDER BY d.after_wait DESC LIMIT 1) d ON true" \
	" UNION ALL" \
	" SELECT s.id, s.kind, s.queue, s.concurrency_key, s.unique_key, s.unique_states, s.state" \
	"  FROM awa.scheduled s" \
	"  WHERE s.id = " ID " AND s.run_lease = 0)"

/*
 * hook: rjit -- awa_engine_list_jobs: awa_list_jobs' page on the ring
 * (fcinfo's materialized SETOF result): state (a label, NULL: any) and
 * values/nulls as awa_list_jobs' statement takes them ($1 kind, $2 queue,
 * $3 tag, $4 before_id, $5 lim, checked).  Outside SPI.
 */
extern Datum awa_engine_list_jobs(FunctionCallInfo fcinfo, const char *state, Datum *values,
								  const char *nulls);

/*
 * hook: rjit -- engine_jit.c: install the planner hook that runs every plan
 * reading the ring's view without JIT (from _PG_init).
 */
extern void awa_engine_jit_init(void);

/*
 * hook: rjit -- engine_jit.c: plans of this kept SPI plan (awa_plan,
 * stmt.c) get no JIT, whatever jit_above_cost says.  Call once per plan,
 * after SPI_keepplan.  Errors: out of memory only.
 */
extern void awa_engine_jit_exempt(SPIPlanPtr plan);

#endif							/* AWA_ENGINE_ADMIN_H */
