/*-------------------------------------------------------------------------
 * ring_dump.c
 *		pg_dump and restore of the ring (docs/storage.md, "Step 5: dump and
 *		restore of the ring").
 *
 * The ring's relations are the extension's configuration tables
 * (pg_extension_config_dump, the section "The ring: dump and restore" of the
 * install and upgrade scripts), so a pg_dump holds their rows and a restore
 * loads them with COPY, after CREATE EXTENSION made them (empty, but for the
 * rows the script writes itself) and with their triggers enabled.  awa never
 * writes its ring with COPY: a COPY into one of its relations is a restore's
 * load, of rows whose effects (counts, live keys) the dump already holds or
 * awa.ring_restore_counts() derives.  The triggers that would derive them
 * again ask awa_ring_restoring() and stand aside.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "executor/spi.h"
#include "tcop/cmdtag.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/portal.h"
#include "utils/rel.h"

#include "engine_admin.h"
#include "floor.h"
#include "ring.h"
#include "ring_part.h"

PG_FUNCTION_INFO_V1(awa_ring_slots_restore);

/*
 * True while the statement being run is a COPY FROM into rel itself (the
 * portal at the top runs it): a restore's load of one of awa's relations.
 * A COPY into awa.jobs, which enqueues through its trigger, is not one.
 */
bool
awa_ring_restoring(Relation rel)
{
	ListCell   *lc;

	if (ActivePortal == NULL || ActivePortal->commandTag != CMDTAG_COPY)
		return false;
	foreach(lc, ActivePortal->stmts)
	{
		PlannedStmt *ps = lfirst_node(PlannedStmt, lc);
		CopyStmt   *copy;

		if (ps->commandType != CMD_UTILITY || !IsA(ps->utilityStmt, CopyStmt))
			continue;
		copy = (CopyStmt *) ps->utilityStmt;
		if (copy->is_from && copy->relation != NULL &&
			RangeVarGetRelid(copy->relation, NoLock, true) == RelationGetRelid(rel))
			return true;
	}
	return false;
}

/*
 * awa.ring_slots_restore() -- BEFORE INSERT FOR EACH ROW trigger of
 * awa.ring_slots.  CREATE EXTENSION writes every slot's row (slot 0 open);
 * a restore's row of a slot that exists takes its place: the row's state and
 * opened_at replace the existing one's (an open row seals the one open
 * before, so that the one-open index holds in any order of the rows), and
 * the insert is skipped.  Outside a COPY, or for a slot not there, the row
 * is inserted as given.
 */
Datum
awa_ring_slots_restore(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr seal = NULL;
	static SPIPlanPtr put = NULL;
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	row;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		isnull;
	uint64		n;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.ring_slots_restore() must be a BEFORE INSERT FOR EACH ROW trigger")));
	row = td->tg_trigtuple;
	if (!awa_ring_restoring(td->tg_relation))
		return PointerGetDatum(row);
	desc = RelationGetDescr(td->tg_relation);
	values[0] = heap_getattr(row, SPI_fnumber(desc, "slot"), desc, &isnull);
	if (isnull)
		return PointerGetDatum(row);	/* the NOT NULL constraint says why */
	values[1] = heap_getattr(row, SPI_fnumber(desc, "state"), desc, &isnull);
	if (isnull)
		return PointerGetDatum(row);
	values[2] = heap_getattr(row, SPI_fnumber(desc, "opened_at"), desc, &isnull);
	if (isnull)
		nulls[2] = 'n';

	SPI_connect();
	if (seal == NULL)
	{
		Oid			types[3] = {INT2OID, TEXTOID, TIMESTAMPTZOID};

		seal = SPI_prepare("UPDATE awa.ring_slots SET state = 'sealed'"
						   " WHERE state = 'open' AND slot <> $1 AND $2 = 'open'", 2, types);
		put = SPI_prepare("UPDATE awa.ring_slots SET state = $2, opened_at = coalesce($3, opened_at)"
						  " WHERE slot = $1", 3, types);
		if (seal == NULL || put == NULL)
			elog(ERROR, "awa.ring_slots_restore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(seal);
		SPI_keepplan(put);
		awa_engine_jit_exempt(seal);
		awa_engine_jit_exempt(put);
	}
	awa_ring_slots_gen++;		/* ring_part.h */
	if (SPI_execute_plan(seal, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "awa.ring_slots_restore: sealing failed");
	if (SPI_execute_plan(put, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "awa.ring_slots_restore: update failed");
	n = SPI_processed;
	SPI_finish();
	return n > 0 ? PointerGetDatum(NULL) : PointerGetDatum(row);
}

PG_FUNCTION_INFO_V1(awa_ring_restore_counting);

/*
 * awa.ring_restore_counting() -- AFTER INSERT FOR EACH STATEMENT trigger of
 * the partitions of awa.ready, awa.claims, awa.done and awa.callbacks, and of
 * awa.scheduled and awa.ring_history.  During a COPY (a restore's load of one
 * relation) it runs awa.ring_restore_counts(), which makes the counters equal
 * to a recount of the jobs loaded so far: after the last relation's load they
 * are exact, in whatever order the restore loads them.  The queues of the
 * rows loaded into awa.ready's partitions or awa.scheduled get a claim floor
 * pin at the head of their lanes (floor.c): in a database restored into (a
 * pg_restore --clean, a restore into a database of the same OID), floors
 * left in shared memory by the claims before would be above the loaded jobs.
 * Outside a COPY it does nothing (awa writes none of these relations with COPY, and never a
 * partition directly).
 */
Datum
awa_ring_restore_counting(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *name;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("awa.ring_restore_counting() must be an AFTER INSERT FOR EACH STATEMENT trigger")));
	if (!awa_ring_restoring(td->tg_relation))
		return PointerGetDatum(NULL);
	SPI_connect();
	name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(td->tg_relation)),
									  RelationGetRelationName(td->tg_relation));
	/*
	 * A restore loads every partition, most of them empty: nothing to count.
	 * Not read_only: the statement's own rows must be seen.
	 */
	if (SPI_execute(psprintf("SELECT FROM %s LIMIT 1", name), false, 1) != SPI_OK_SELECT)
		elog(ERROR, "awa.ring_restore_counting: reading %s failed", name);
	if (SPI_processed == 0)
	{
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	if (SPI_execute("SELECT awa.ring_restore_counts()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "awa.ring_restore_counting: awa.ring_restore_counts() failed");
	if (SPI_fnumber(RelationGetDescr(td->tg_relation), "queue") > 0)
	{
		char	   *sql = psprintf("SELECT DISTINCT queue FROM %s", name);
		uint64		i;
		bool		isnull;

		if (SPI_execute(sql, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "awa.ring_restore_counting: reading the queues of %s failed",
				 RelationGetRelationName(td->tg_relation));
		for (i = 0; i < SPI_processed; i++)
		{
			Datum		q = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
				awa_floor_note(awa_ring_lane(DatumGetTextPP(q)), DT_NOBEGIN);
		}
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}
