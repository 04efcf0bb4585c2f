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

/* Limits of the data model (also enforced by CHECK constraints). */
#define AWA_MAX_NAME_CHARS		200
#define AWA_MIN_PRIORITY		1
#define AWA_MAX_PRIORITY		4
#define AWA_MAX_ATTEMPTS		1000
#define AWA_MAX_TAGS			20
/* Default unique_states of a unique job: all but failed and cancelled. */
#define AWA_DEFAULT_UNIQUE_STATES	"11111001"
#define AWA_MAX_QUEUE_LIMIT		1000000	/* awa.queue_meta.max_running */
#define AWA_MAX_INSERT_MANY		10000	/* jobs per awa_insert_many call */

/* Settings (awa.c) */
extern bool awa_notify;
extern int	awa_priority_aging_interval;
extern int	awa_heartbeat_timeout;
extern int	awa_max_args_bytes;

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
} AwaJob;

/* insert.c */
extern void awa_check_name(text *value, const char *field);
extern void awa_validate_job(AwaJob *job);
extern HeapTuple awa_insert_job(AwaJob *job, TupleDesc *desc);
extern int	awa_state_bit(const char *label);
extern void awa_check_unique_period(int64 us);
extern bytea *awa_unique_key(text *kind, text *queue, Jsonb *args,
							 int64 period_us, TimestampTz run_at);
extern HeapTuple awa_insert_unique_job(AwaJob *job, bytea *key,
									   const char *bits, TupleDesc *desc);

/* fastinsert.c */
extern bool awa_fast_insert(AwaJob *job, Datum *result);
extern TupleTableSlot *awa_fast_insert_slot(AwaJob *job);

/* lifecycle.c */
extern void awa_notify_if_held(HeapTuple tup, TupleDesc desc);

/* spi_util.c */
extern SPIPlanPtr awa_plan(SPIPlanPtr *cache, const char *sql, int nargs,
						   const Oid *argtypes);
extern SPIPlanPtr awa_plan_opts(SPIPlanPtr *cache, const char *sql, int nargs,
								const Oid *argtypes, int cursor_options);
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
extern void awa_check_not_null(FunctionCallInfo fcinfo, int argno,
							   const char *name);

/* claim.c */
extern int64 awa_interval_usecs(Interval *iv);

/* worker.c */
extern int64 awa_rescue_jobs(void);

/* maintain.c */
extern void awa_maintain_init(void);

/* bulk.c */
extern bool awa_rows_prepared;

/* wake.c */
/* NOTIFY channels: a queue's, a queue's too long for that, awa's own */
#define AWA_QUEUE_CHANNEL_PREFIX	"awa:"	/* + queue name, if it fits */
#define AWA_HASHED_CHANNEL_PREFIX	"awa#"	/* + MD5 hex of the queue name */
#define AWA_OWN_CHANNEL_PREFIX		"awa."
#define AWA_CANCEL_CHANNEL			"awa.cancel"
extern void awa_job_available(const char *queue);
extern void awa_job_scheduled(const char *queue);
extern void awa_notify_cancel(int64 job_id, int64 run_lease);
extern void awa_wake_init(void);
extern void awa_queue_channel(const char *queue, char *channel);
extern bool awa_channel_is_ours(const char *channel);
extern bool awa_wait_register(const char *queue);
extern void awa_wait_attempt(void);
extern long awa_wait_before_sleep(long due_ms);
extern void awa_wait_unregister(void);
extern void awa_wait_at_limit(bool at_limit);
extern void awa_claim_begins(const char *queue);
extern void awa_claim_ends(int n, bool full);
extern void awa_running_freed(void);
extern void awa_set_maintainer_pid(int pid);
extern void awa_set_maintained(TimestampTz at);
extern void awa_get_maintainer(TimestampTz *last_run, int *pid);
extern bool awa_preloaded(void);

#endif							/* AWA_H */
