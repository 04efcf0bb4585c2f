/*-------------------------------------------------------------------------
 *
 * fastinsert.c
 *		awa_insert's write path without SPI: heap and index inserts through
 *		a ResultRelInfo kept for the whole transaction.
 *
 * Why: an INSERT through SPI pays executor start-up and shutdown on every
 * call (opening five indexes, compiling CHECK constraints and partial-index
 * predicates, the RETURNING projection).  Measured: 100 awa_insert calls in
 * one statement took about 8x the time of one INSERT ... SELECT of 100
 * rows.  Here the relation, its indexes and the compiled predicates are set
 * up once per transaction and each call only forms the row, inserts it and
 * its index entries.
 *
 * What it skips, and why that is safe: the CHECK constraints of awa.jobs
 * restate awa_validate_job, which every row has passed; the BEFORE INSERT
 * trigger of awa.jobs exists to apply that same validation to plain INSERT
 * and COPY.  If awa.jobs has any other trigger (a user's audit trigger, a
 * foreign key), or row-level security, or the caller may not INSERT into
 * it, the caller falls back to SPI so the row goes through the full
 * executor (and its permission checks).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"

#include "awa.h"

/* Set-up kept for one transaction. */
typedef struct FastInsert
{
	LocalTransactionId lxid;	/* transaction it belongs to */
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	Oid			seqid;			/* the identity sequence of id */
	Datum		empty_errors;	/* '{}'::jsonb[] */
	Datum		state_available;
	Datum		state_scheduled;
	/* 0-based attribute numbers */
	int			a_id,
				a_kind,
				a_queue,
				a_args,
				a_state,
				a_priority,
				a_attempt,
				a_max_attempts,
				a_run_at,
				a_created_at,
				a_errors,
				a_metadata,
				a_tags,
				a_run_lease,
				a_timeout;		/* -1 before 0.3.0 */
} FastInsert;

static FastInsert *fi = NULL;
static bool fi_unusable = false;	/* this transaction must use SPI */
static LocalTransactionId fi_unusable_lxid = InvalidLocalTransactionId;
static bool callbacks_registered = false;

/* Any relcache invalidation drops the set-up; the next call rebuilds it. */
static void
fast_insert_relcache_cb(Datum arg, Oid relid)
{
	if (fi && (relid == InvalidOid || relid == RelationGetRelid(fi->rel)))
		fi->lxid = InvalidLocalTransactionId;	/* rebuilt after closing */
}

/*
 * Close what the set-up holds open.  The relation and index references
 * belong to TopTransactionResourceOwner, where they were opened; the
 * current owner may be another one (a COMMIT inside a procedure or DO
 * block runs under its portal's), so release them under theirs.
 */
static void
fast_insert_close(void)
{
	ResourceOwner oldowner = CurrentResourceOwner;

	if (fi == NULL)
		return;
	if (TopTransactionResourceOwner != NULL)
		CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		ExecCloseIndices(fi->rri);
		ExecDropSingleTupleTableSlot(fi->slot);
		table_close(fi->rel, NoLock);
		FreeExecutorState(fi->estate);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	fi = NULL;
}

/*
 * At commit, close the relation and indexes properly; at abort, resource
 * owner clean-up has released them and the memory went with
 * TopTransactionContext, so just forget the set-up.
 */
static void
fast_insert_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			fast_insert_close();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			fi = NULL;
			break;
		default:
			break;
	}
}

/* The 0-based number of a column of awa.jobs, or -1 if it has none. */
static int
attno_if_any(TupleDesc desc, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	return -1;
}

/* The 0-based number of a column of awa.jobs; it must exist. */
static int
attno(TupleDesc desc, const char *name)
{
	int			i = attno_if_any(desc, name);

	if (i < 0)
		elog(ERROR, "awa: awa.jobs has no column \"%s\"", name);
	return i;
}

/*
 * Whether awa.jobs has only awa's own trigger and no row-level security, so
 * the direct path writes exactly what an INSERT would.
 */
static bool
plain_enough(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;

	if (rel->rd_rel->relrowsecurity)
		return false;
	if (td == NULL)
		return true;
	return td->numtriggers == 1 &&
		strcmp(td->triggers[0].tgname, "jobs_before_insert") == 0;
}

/* Build the set-up for the current transaction, or return false. */
static bool
fast_insert_setup(void)
{
	MemoryContext oldcxt;
	ResourceOwner oldowner;
	Oid			nsp;
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	FastInsert *f;

	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(fast_insert_relcache_cb, (Datum) 0);
		RegisterXactCallback(fast_insert_xact_cb, NULL);
		callbacks_registered = true;
	}
	if (fi != NULL)
		fast_insert_close();	/* invalidated: start again */

	nsp = get_namespace_oid("awa", false);
	relid = get_relname_relid("jobs", nsp);
	if (!OidIsValid(relid))
		return false;

	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	oldowner = CurrentResourceOwner;
	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		rel = table_open(relid, RowExclusiveLock);
		if (!plain_enough(rel) ||
			pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		{
			table_close(rel, NoLock);
			rel = NULL;
		}
		else
		{
			f = palloc0(sizeof(FastInsert));
			f->rel = rel;
			desc = RelationGetDescr(rel);
			f->estate = CreateExecutorState();
			f->rri = makeNode(ResultRelInfo);
			InitResultRelInfo(f->rri, rel, 1, NULL, 0);
			ExecOpenIndices(f->rri, false);
			f->slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
			f->a_id = attno(desc, "id");
			f->a_kind = attno(desc, "kind");
			f->a_queue = attno(desc, "queue");
			f->a_args = attno(desc, "args");
			f->a_state = attno(desc, "state");
			f->a_priority = attno(desc, "priority");
			f->a_attempt = attno(desc, "attempt");
			f->a_max_attempts = attno(desc, "max_attempts");
			f->a_run_at = attno(desc, "run_at");
			f->a_created_at = attno(desc, "created_at");
			f->a_errors = attno(desc, "errors");
			f->a_metadata = attno(desc, "metadata");
			f->a_tags = attno(desc, "tags");
			f->a_run_lease = attno(desc, "run_lease");
			f->a_timeout = attno_if_any(desc, "timeout");
			f->seqid = getIdentitySequence(relid, f->a_id + 1, false);
			f->empty_errors = PointerGetDatum(construct_empty_array(JSONBOID));
			f->state_available = DirectFunctionCall2(enum_in, CStringGetDatum("available"),
													 ObjectIdGetDatum(TupleDescAttr(desc, f->a_state)->atttypid));
			f->state_scheduled = DirectFunctionCall2(enum_in, CStringGetDatum("scheduled"),
													 ObjectIdGetDatum(TupleDescAttr(desc, f->a_state)->atttypid));
			f->lxid = MyProc->lxid;
			fi = f;
		}
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = oldowner;
		MemoryContextSwitchTo(oldcxt);
	}
	PG_END_TRY();
	return fi != NULL;
}

/*
 * Insert one validated job directly and return the slot holding its row
 * (valid until the next call), or NULL, having done nothing, when the
 * direct path cannot be used: the caller then inserts through SPI.
 */
TupleTableSlot *
awa_fast_insert_slot(AwaJob *job)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	AwaJobState state = awa_job_initial_state(job);
	TimestampTz run_at = job->has_run_at ? job->run_at : now;
	TupleTableSlot *slot;
	Datum	   *v;
	bool	   *n;
	MemoryContext callercxt = CurrentMemoryContext;

	if (fi_unusable && fi_unusable_lxid == MyProc->lxid)
		return NULL;
	if (fi == NULL || fi->lxid != MyProc->lxid)
	{
		if (!fast_insert_setup())
		{
			fi_unusable = true;
			fi_unusable_lxid = MyProc->lxid;
			return NULL;
		}
	}

	slot = fi->slot;
	ExecClearTuple(slot);
	v = slot->tts_values;
	n = slot->tts_isnull;
	memset(n, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);

	v[fi->a_id] = Int64GetDatum(nextval_internal(fi->seqid, false));
	v[fi->a_kind] = PointerGetDatum(job->kind);
	v[fi->a_queue] = PointerGetDatum(job->queue);
	v[fi->a_args] = JsonbPGetDatum(job->args);
	v[fi->a_state] = state == AWA_STATE_SCHEDULED ? fi->state_scheduled : fi->state_available;
	v[fi->a_priority] = Int16GetDatum((int16) job->priority);
	v[fi->a_attempt] = Int16GetDatum(0);
	v[fi->a_max_attempts] = Int16GetDatum((int16) job->max_attempts);
	v[fi->a_run_at] = TimestampTzGetDatum(run_at);
	v[fi->a_created_at] = TimestampTzGetDatum(now);
	v[fi->a_errors] = fi->empty_errors;
	v[fi->a_metadata] = JsonbPGetDatum(job->metadata);
	v[fi->a_tags] = PointerGetDatum(job->tags);
	v[fi->a_run_lease] = Int64GetDatum(0);
	n[fi->a_id] = n[fi->a_kind] = n[fi->a_queue] = n[fi->a_args] = false;
	n[fi->a_state] = n[fi->a_priority] = n[fi->a_attempt] = false;
	n[fi->a_max_attempts] = n[fi->a_run_at] = n[fi->a_created_at] = false;
	n[fi->a_errors] = n[fi->a_metadata] = n[fi->a_tags] = n[fi->a_run_lease] = false;
	if (job->timeout != NULL)
	{
		/* awa_validate_job made sure that the schema has the column */
		Assert(fi->a_timeout >= 0);
		v[fi->a_timeout] = IntervalPGetDatum(job->timeout);
		n[fi->a_timeout] = false;
	}
	ExecStoreVirtualTuple(slot);

	table_tuple_insert(fi->rel, slot, GetCurrentCommandId(true), 0, NULL);
	if (fi->rri->ri_NumIndices > 0)
		(void) ExecInsertIndexTuples(fi->rri, slot, fi->estate, false, false, NULL, NIL);
	ResetPerTupleExprContext(fi->estate);

	MemoryContextSwitchTo(callercxt);

	awa_job_enqueued(text_to_cstring(job->queue), state, run_at);
	return slot;
}

/*
 * awa_fast_insert_slot for awa_insert: on success *result is the job row
 * as a composite Datum in the caller's memory context.
 */
bool
awa_fast_insert(AwaJob *job, Datum *result)
{
	TupleTableSlot *slot = awa_fast_insert_slot(job);

	if (slot == NULL)
		return false;
	*result = ExecFetchSlotHeapTupleDatum(slot);
	return true;
}
