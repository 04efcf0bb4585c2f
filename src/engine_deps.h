/*-------------------------------------------------------------------------
 *
 * engine_deps.h
 *		Results, dependencies and groups of the awa_* functions on the ring
 *		engine (engine_deps.c; docs/storage.md, "Step 5: results and
 *		dependents on the ring").
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_ENGINE_DEPS_H
#define AWA_ENGINE_DEPS_H

#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"

/*
 * Call these only when awa_engine_ring() (awa.h) is true, after the awa_*
 * function checked its arguments as on the table engine.
 *
 * awa_engine_complete_result: awa_complete's answer (whether the attempt
 *		was running under that lease and is now completed), result (NULL:
 *		none) stored as the job's result.
 * awa_engine_complete_results: awa_complete_many's (how many completed),
 *		results[i] (results NULL: none at all) stored as job i's result.
 * awa_engine_group_stats: awa_group_stats' SETOF row for group_id (a
 *		checked text Datum), as fcinfo's materialized result.
 * awa_engine_group_on_finish: awa_group_on_finish's answer (the callback
 *		job's id, or NULL) for fcinfo's arguments (none NULL).
 */
extern bool awa_engine_complete_result(Datum id, Datum lease, Jsonb *result);
extern int64 awa_engine_complete_results(Datum ids, Datum leases, ArrayType *results);
extern Datum awa_engine_group_stats(FunctionCallInfo fcinfo, Datum group_id);
extern Datum awa_engine_group_on_finish(FunctionCallInfo fcinfo);

#endif							/* AWA_ENGINE_DEPS_H */
