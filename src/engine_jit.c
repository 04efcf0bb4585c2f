/*-------------------------------------------------------------------------
 *
 * engine_jit.c
 *		No JIT for a statement that reads the ring's view (docs/storage.md,
 *		"Step 5: reading the ring's view fast").
 *
 *	A job of the ring is a row of the view awa.ring_live_jobs (awa.jobs in
 *	a database on the ring engine, awa.ring_jobs): its columns are dozens
 *	of expressions and correlated index probes per row.  The planner's
 *	estimate of a read of it passes jit_above_cost at a few tens of
 *	thousands of jobs, and PostgreSQL then compiles every one of those
 *	expressions with LLVM before the first row: seconds per statement on a
 *	fresh session (awa_queue_stats 4.6 s, awa_list_jobs 1.2 s against
 *	30-40 ms without JIT), for a plan whose time is index probes that JIT
 *	does not speed up.  So every plan that reads the view, whoever plans it
 *	(awa's own statements, SQL functions, a user's or the Django admin's
 *	query of awa.jobs), is marked to run without JIT: a planner hook clears
 *	the plan's JIT flags when the relations it depends on include the view.
 *	Nothing else of the plan changes, no setting is touched (nothing to
 *	restore after an error), and plans of everything else keep JIT as the
 *	server's settings say.
 *
 *	The hook is installed when awa.so is loaded; with awa in
 *	shared_preload_libraries (as the README asks) that is before any
 *	statement of any session.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "jit/jit.h"
#include "nodes/pg_list.h"
#include "optimizer/planner.h"
#include "utils/lsyscache.h"

#include "awa.h"
#include "engine_admin.h"

static planner_hook_type prev_planner = NULL;

/*
 * Whether a plan depending on the relations rels reads the ring: the
 * ring's view awa.ring_live_jobs (which awa.ring_jobs and, on the ring
 * engine, the view awa.jobs read), or the view awa.jobs itself (an INSERT
 * or COPY into it on the ring engine).
 */
static bool
reads_ring_view(List *rels)
{
	Oid			nsp = get_namespace_oid("awa", true);
	Oid			jobs;

	if (!OidIsValid(nsp))
		return false;
	if (list_member_oid(rels, get_relname_relid("ring_live_jobs", nsp)))
		return true;
	jobs = get_relname_relid("jobs", nsp);
	return list_member_oid(rels, jobs) && get_rel_relkind(jobs) == RELKIND_VIEW;
}

/* planner_hook: plan as usual; a plan reading the ring's view gets no JIT. */
static PlannedStmt *
engine_jit_planner(Query *parse, const char *query_string, int cursor_options,
				   ParamListInfo bound_params)
{
	PlannedStmt *result;

	if (prev_planner)
		result = prev_planner(parse, query_string, cursor_options, bound_params);
	else
		result = standard_planner(parse, query_string, cursor_options, bound_params);

	/*
	 * relationOids lists every relation the plan depends on, views
	 * included (the rewriter keeps a view's entry for its permission
	 * check).
	 */
	if (result->jitFlags != PGJIT_NONE && result->relationOids != NIL &&
		reads_ring_view(result->relationOids))
		result->jitFlags = PGJIT_NONE;
	return result;
}

/* See engine_admin.h. */
void
awa_engine_jit_init(void)
{
	prev_planner = planner_hook;
	planner_hook = engine_jit_planner;
}
