/*-------------------------------------------------------------------------
 *
 * engine_jit.c
 *		No JIT for a statement that reads the ring's view (docs/storage.md,
 *		"Step 5: reading the ring's view fast"), nor for awa's own kept
 *		statements.
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
 *	Nothing else of the plan changes and no setting is touched (nothing to
 *	restore after an error).
 *
 *	The same holds for awa's own statements whatever they read (docs/
 *	storage.md, "Step 5: no JIT for awa's own statements"): each is a kept
 *	generic plan of index probes, and a generic plan's estimate grows with
 *	the tables' statistics.  At 10 million jobs awa_queue_stats took
 *	51.8 ms a call against 1.85 ms at a million: its statements' plans
 *	passed jit_above_cost, and PostgreSQL compiles a plan's expressions at
 *	every execution.  So the plans of every statement awa prepares and
 *	keeps (awa_plan, stmt.c) get no JIT either: awa_plan registers the
 *	text of each of its plan sources here, and the hook knows them by that
 *	text's address (the plan cache passes the plan source's own copy of
 *	its text to the planner at every replan).  A user's statement that
 *	does not read the view, or a function of the user's that awa's
 *	statement runs, is planned as the server's settings say.
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

#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/plancache.h"

#include "awa.h"
#include "engine_admin.h"

static planner_hook_type prev_planner = NULL;

/*
 * The addresses of the texts of awa's kept plan sources (a set: the key is
 * the pointer, no entry data).  awa's plans are kept for the life of the
 * backend (stmt.c), but for the few freed when the extension's schema
 * changes (claim.c, enqueue.c, ring_enq.c prepare those anew): their
 * addresses stay here, and a later text that lands at one of them is
 * planned without JIT, which changes its speed at most, never its result.
 */
static HTAB *awa_plan_texts = NULL;

/* See engine_admin.h. */
void
awa_engine_jit_exempt(SPIPlanPtr plan)
{
	ListCell   *lc;

	if (awa_plan_texts == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(const char *);
		ctl.entrysize = sizeof(const char *);
		awa_plan_texts = hash_create("awa kept plan texts", 256, &ctl,
									 HASH_ELEM | HASH_BLOBS);
	}
	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		const char *text = ((CachedPlanSource *) lfirst(lc))->query_string;

		if (text != NULL)
			(void) hash_search(awa_plan_texts, &text, HASH_ENTER, NULL);
	}
}

/* Whether query_string is the text of one of awa's kept plan sources. */
static bool
is_awa_statement(const char *query_string)
{
	return query_string != NULL && awa_plan_texts != NULL &&
		hash_search(awa_plan_texts, &query_string, HASH_FIND, NULL) != NULL;
}

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

/*
 * planner_hook: plan as usual; a plan of awa's own statements or reading
 * the ring's view gets no JIT.
 */
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
	if (result->jitFlags != PGJIT_NONE &&
		(is_awa_statement(query_string) ||
		 (result->relationOids != NIL && reads_ring_view(result->relationOids))))
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
