/*-------------------------------------------------------------------------
 *
 * ring_unique.c
 *		The ring's unique jobs (docs/storage.md, section 5 and "Step 4:
 *		unique jobs").  Internal like ring.c: nothing here runs unless
 *		awa.ring_engine is on (ring_insert checks it; the trigger only
 *		fires on the ring's relations, which only the ring writes).
 *
 * awa.unique_keys holds one row per ring job that holds its unique key:
 * (unique_key primary key, job_id, unique_states).  It is the mutable side
 * table of unique jobs: its primary key decides who holds a key, and its
 * rows are deleted when their jobs leave their holding states, so that
 * nothing on awa.ready, awa.claims or awa.done is ever updated or deleted.
 *
 * Enqueue (awa.ring_insert with any of unique_by_args, unique_by_queue,
 * unique_period, unique_states; hook in ring.c): the key is built as
 * awa_insert builds it (unique.c: SHA-256 of the kind and the parts asked
 * for), and its row is inserted first, with a fresh id from awa.jobs'
 * sequence, ON CONFLICT DO NOTHING:
 *	- inserted: the job is written with that id (ready or scheduled row,
 *	  carrying unique_key and unique_states for awa.ring_jobs), in the same
 *	  transaction: a rollback removes both;
 *	- conflict: the key's holder is looked up and its id returned, and
 *	  nothing is written (awa_insert returns the holder's row).  A
 *	  concurrent insert of the same key not yet committed makes ours wait
 *	  in the primary key: if it commits, ours conflicts and returns it; if
 *	  it rolls back, ours inserts.  Exactly one job holds a key.  A holder
 *	  that released the key between the two statements: the insert is
 *	  tried again, and after RING_UNIQUE_TRIES 40001, as awa_insert does.
 *	  Under REPEATABLE READ a conflict with a key committed after the
 *	  snapshot is PostgreSQL's own 40001.
 *
 * Release: an AFTER INSERT statement trigger on awa.done (awa.ring_unique_
 * release) deletes the key rows of the jobs whose new done row has a state
 * outside their unique_states.  Every live state (scheduled, available,
 * running, retryable, waiting_external) must be held (unique.c's
 * awa_check_unique_states), so only a final done row (completed, failed,
 * cancelled) can release a key: ready rows, receipts and scheduled rows
 * never do, and the trigger on done covers every path that ends a job
 * (complete, fail for good, cancel, rescue, and any added later) in the
 * transaction that ends it, without a hook in each.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "storage/bufmgr.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "awa.h"
#include "ring.h"
#include "ring_unique.h"

#define RING_UNIQUE_TRIES	3

PG_FUNCTION_INFO_V1(awa_ring_unique_release);

static int64 ring_unique_reserve(AwaJob *job, Datum *values, char *nulls);

/* ring.c's hook into this file (ring_unique.h); from _PG_init */
void
awa_ring_unique_init(void)
{
	awa_ring_unique_reserve = ring_unique_reserve;
}

/* See ring_unique.h. */
static int64
ring_unique_reserve(AwaJob *job, Datum *values, char *nulls)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr holder_plan = NULL;
	static const Oid argtypes[] = {BYTEAOID, TEXTOID};
	Datum		kv[2];
	bool		isnull;
	int			try;

	nulls[6] = nulls[7] = nulls[8] = 'n';
	if (job->unique == NULL)
		return 0;
	/* the key of unique.c (awa_job_set_unique: kind, queue, args, run_at as checked) */
	kv[0] = PointerGetDatum(job->unique->key);
	kv[1] = CStringGetTextDatum(job->unique->bits);

	awa_plan(&insert_plan,
			 "INSERT INTO awa.unique_keys (unique_key, job_id, unique_states)"
			 " VALUES ($1, nextval('awa.jobs_id_seq'), $2::bit(8))"
			 " ON CONFLICT (unique_key) DO NOTHING RETURNING job_id",
			 2, argtypes);
	awa_plan(&holder_plan,
			 "SELECT u.job_id FROM awa.unique_keys u WHERE u.unique_key = $1",
			 1, argtypes);
	for (try = 0; try < RING_UNIQUE_TRIES; try++)
	{
		if (awa_ring_run(insert_plan, kv, NULL, InvalidSnapshot, false, SPI_OK_INSERT_RETURNING,
						 "awa.ring_insert: unique key") == 1)
		{
			values[6] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			values[7] = kv[0];
			values[8] = kv[1];
			nulls[6] = nulls[7] = nulls[8] = ' ';
			return 0;
		}
		/*
		 * held: by whom (it may have let go of it since: then again).  Not
		 * read-only: a read-only lookup would reuse the caller's snapshot and
		 * miss a key this transaction took earlier in the same statement.
		 */
		if (awa_ring_run(holder_plan, kv, NULL, InvalidSnapshot, false, SPI_OK_SELECT,
						 "awa.ring_insert: unique key holder") == 1)
			return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not insert or find the job holding unique key"),
			 errhint("The holder changed state while this insert ran; retry the transaction.")));
	return 0;					/* keep the compiler quiet */
}

/* Whether awa.unique_keys has any page (a relation without one holds no row of any transaction). */
static bool
ring_unique_keys_paged(void)
{
	Oid			relid = get_relname_relid("unique_keys", get_namespace_oid("awa", false));
	Relation	rel;
	bool		paged;

	if (!OidIsValid(relid))
		return true;			/* let the statement say what is missing */
	rel = table_open(relid, AccessShareLock);
	paged = RelationGetNumberOfBlocks(rel) > 0;
	table_close(rel, NoLock);
	return paged;
}

/*
 * awa.ring_unique_release(): AFTER INSERT FOR EACH STATEMENT trigger of
 * awa.done (transition table ring_new): the jobs whose new done row has a
 * final state outside their unique_states let go of their keys.
 */
Datum
awa_ring_unique_release(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		td->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.ring_unique_release must be an AFTER INSERT FOR EACH STATEMENT trigger"
						" with a new table")));
	/*
	 * hook: rcrash -- a carry (ring.h): the same ends again, their keys let go
	 * of when they were first written; a job's past carried without its ready
	 * row (a failed attempt of a job retried since) would let go of the key
	 * the job holds again
	 */
	if (awa_ring_counting_off)
		return PointerGetDatum(NULL);
	/*
	 * no key was ever written (awa.unique_keys has no page): none to let go
	 * of, and no statement (a completion's done rows paid one each, most
	 * often for nothing: docs/storage.md, "Step 5: claim and complete,
	 * fewer statements").  Exact: a key row, committed or not, is on a page.
	 */
	if (!ring_unique_keys_paged())
		return PointerGetDatum(NULL);

	SPI_connect();
	if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "awa.ring_unique_release: could not register the transition table");
	/* per new final done row, an index probe of unique_keys' job_id */
	awa_plan(&plan,
			 "DELETE FROM awa.unique_keys u USING ring_new n"
			 " WHERE n.state IN ('completed', 'failed', 'cancelled') AND u.job_id = n.job_id"
			 " AND NOT awa.unique_state_held(u.unique_states, n.state)",
			 0, NULL);
	awa_ring_run(plan, NULL, NULL, InvalidSnapshot, false, SPI_OK_DELETE,
				 "awa.ring_unique_release");
	SPI_finish();
	return PointerGetDatum(NULL);
}
