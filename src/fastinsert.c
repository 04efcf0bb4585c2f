/*-------------------------------------------------------------------------
 *
 * fastinsert.c
 *		The enqueue path's direct write (enqueue.c): heap and index inserts
 *		through a ResultRelInfo kept for the whole transaction.
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
 * and COPY.  The statement triggers that count jobs (counters.c) do not
 * fire either: the rows written here are noted with awa_counters_note_insert,
 * which writes their deltas at the end of the statement.  If awa.jobs has
 * any other trigger (a user's audit trigger, a
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
#include "history.h"

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
	AwaJobColumns cols;			/* the enqueue columns (awa_job_row) */
	bool		counted;		/* awa.jobs has the counting triggers */
	/* 0-based attribute numbers of the columns the executor would default */
	int			a_id,
				a_attempt,
				a_created_at,
				a_errors,
				a_run_lease;
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

/*
 * At the abort of a subtransaction that created awa.jobs (CREATE EXTENSION
 * awa after a SAVEPOINT, then awa_insert, then ROLLBACK TO it), close the
 * set-up before the relation cache drops the relation: its references
 * belong to TopTransactionResourceOwner, which the subtransaction's abort
 * does not release, and the relation no longer exists afterwards.
 */
static void
fast_insert_subxact_cb(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
					   void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && fi != NULL && fi->rel->rd_createSubid == mySubid)
		fast_insert_close();
}

/*
 * awa's own triggers on awa.jobs: the COPY trigger and the counting ones,
 * then those of job dependencies (deps.c), which do not fire on INSERT.
 */
static const char *const own_triggers[] = {
	"jobs_before_insert", "jobs_counters_insert", "jobs_counters_update",
	"jobs_counters_delete", "jobs_counters_truncate",
	"jobs_dependencies_update", "jobs_dependencies_delete", "jobs_dependencies_truncate"
};

/*
 * Whether awa.jobs has only awa's own triggers and no row-level security,
 * so the direct path writes exactly what an INSERT would; *counted: the
 * counting triggers are there (the path must note its jobs).
 */
static bool
plain_enough(Relation rel, bool *counted)
{
	TriggerDesc *td = rel->trigdesc;
	int			i,
				k;

	*counted = false;
	if (rel->rd_rel->relrowsecurity)
		return false;
	if (td == NULL)
		return true;
	for (i = 0; i < td->numtriggers; i++)
	{
		for (k = 0; k < lengthof(own_triggers); k++)
			if (strcmp(td->triggers[i].tgname, own_triggers[k]) == 0)
				break;
		if (k == lengthof(own_triggers))
			return false;
		if (k == 1 && td->triggers[i].tgenabled != TRIGGER_DISABLED)
			*counted = true;
	}
	return true;
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
	bool		counted = false;

	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(fast_insert_relcache_cb, (Datum) 0);
		RegisterXactCallback(fast_insert_xact_cb, NULL);
		RegisterSubXactCallback(fast_insert_subxact_cb, NULL);
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
		/* a table only: on the ring engine awa.jobs is a view (engine.c) */
		if (rel->rd_rel->relkind != RELKIND_RELATION || !plain_enough(rel, &counted) ||
			pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		{
			table_close(rel, NoLock);
			rel = NULL;
		}
		else
		{
			f = palloc0(sizeof(FastInsert));
			f->rel = rel;
			f->counted = counted;
			desc = RelationGetDescr(rel);
			f->estate = CreateExecutorState();
			f->rri = makeNode(ResultRelInfo);
			InitResultRelInfo(f->rri, rel, 1, NULL, 0);
			ExecOpenIndices(f->rri, false);
			f->slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
			awa_job_columns(desc, &f->cols);
			f->a_id = awa_job_column(desc, "id");
			f->a_attempt = awa_job_column(desc, "attempt");
			f->a_created_at = awa_job_column(desc, "created_at");
			f->a_errors = awa_job_column(desc, "errors");
			f->a_run_lease = awa_job_column(desc, "run_lease");
			f->seqid = getIdentitySequence(relid, f->a_id + 1, false);
			f->empty_errors = PointerGetDatum(construct_empty_array(JSONBOID));
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
	AwaJobState state;
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

	state = awa_job_row(job, &fi->cols, v, n);
	v[fi->a_id] = Int64GetDatum(nextval_internal(fi->seqid, false));
	v[fi->a_attempt] = Int16GetDatum(0);
	v[fi->a_created_at] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	v[fi->a_errors] = fi->empty_errors;
	v[fi->a_run_lease] = Int64GetDatum(0);
	n[fi->a_id] = n[fi->a_attempt] = n[fi->a_created_at] = false;
	n[fi->a_errors] = n[fi->a_run_lease] = false;
	ExecStoreVirtualTuple(slot);

	table_tuple_insert(fi->rel, slot, GetCurrentCommandId(true), 0, NULL);
	if (fi->rri->ri_NumIndices > 0)
		(void) ExecInsertIndexTuples(fi->rri, slot, fi->estate, false, false, NULL, NIL);
	ResetPerTupleExprContext(fi->estate);

	MemoryContextSwitchTo(callercxt);

	{
		char	   *queue = text_to_cstring(job->queue);

		if (fi->counted)
		{
			awa_counters_note_insert(queue, state);
			awa_history_note_insert(queue, text_to_cstring(job->kind));
		}
		awa_job_enqueued(queue, state, DatumGetTimestampTz(v[fi->cols.run_at]));
	}
	return slot;
}
