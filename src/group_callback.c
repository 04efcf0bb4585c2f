/*-------------------------------------------------------------------------
 *
 * group_callback.c
 *		awa_group_callback(group_id): the finish callback registered for a
 *		group (awa_group_on_finish), on either engine.  awa_group_stats
 *		gives a group's counts and its callback's job once enqueued; this
 *		gives what was registered before that (the operator's dashboard
 *		shows "etl.report, waiting for the unfinished jobs").  The table
 *		engine keeps callbacks in awa.group_callbacks, the ring engine in
 *		awa.ring_group_callbacks (ring_deps.c); both have the same columns.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "awa.h"
#include "ring.h"

PG_FUNCTION_INFO_V1(awa_group_callback);

#define CALLBACK_COLUMNS \
	"kind, args, queue, priority, max_attempts, metadata, registered_at, callback_job_id, finished_at"

/*
 * awa_group_callback(group_id text) RETURNS TABLE (kind text, args jsonb,
 *		queue text, priority smallint, max_attempts smallint, metadata jsonb,
 *		registered_at timestamptz, callback_job_id bigint,
 *		finished_at timestamptz)
 *
 * The group's finish callback as registered (its job's fields as given to
 * awa_group_on_finish: the job gains finished_group in its metadata when it
 * is enqueued), when, and its job's id and the time it was enqueued (both
 * NULL until the group finishes): one row, or none when the group has no
 * callback.  Read at the caller's snapshot, by the primary
 * key.  Errors: 22004 group_id NULL, 22023 group_id not 1 to 200
 * characters, 0A000 a schema without groups.
 */
Datum
awa_group_callback(PG_FUNCTION_ARGS)
{
	static AwaStmt table_stmt = AWA_QUERY("awa_group_callback: reading a group's callback",
										  "SELECT " CALLBACK_COLUMNS
										  " FROM awa.group_callbacks WHERE group_id = $1",
										  1, TEXTOID);
	static SPIPlanPtr ring_plan = NULL;
	static const Oid ring_types[] = {TEXTOID};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		g;
	uint64		n;
	uint64		i;

	awa_check_not_null(fcinfo, 0, "group_id");
	awa_check_name(PG_GETARG_TEXT_PP(0), "group_id");
	awa_require_schema(AWA_SCHEMA_GROUPS, "groups");
	g = PG_GETARG_DATUM(0);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	SPI_connect();
	if (awa_engine_ring())
	{
		/* planned as the ring's own reads: kept plan, planner pinned (an index probe) */
		awa_plan(&ring_plan, "SELECT " CALLBACK_COLUMNS
				 " FROM awa.ring_group_callbacks WHERE group_id = $1", 1, ring_types);
		n = awa_ring_run(ring_plan, &g, NULL, InvalidSnapshot, true, SPI_OK_SELECT,
						 "awa_group_callback");
	}
	else
		n = awa_stmt_run(&table_stmt, &g, NULL, 0);
	for (i = 0; i < n; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	SPI_finish();
	return (Datum) 0;
}
