/*-------------------------------------------------------------------------
 *
 * job_args.c
 *		awa_insert's arguments read into a job (AwaJob, awa.h) and checked:
 *		one reader for awa_insert (insert.c) and awa.ring_insert (ring.c),
 *		so that both refuse the same input with the same errors.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#include "awa.h"
#include "deps.h"

/* awa_insert's optional trailing arguments (0-based), absent in older schemas */
#define INSERT_ARG_TIMEOUT				12
#define INSERT_ARG_GROUP				13
#define INSERT_ARG_AFTER				14
#define INSERT_ARG_ON_PARENT_FAILURE	15
#define INSERT_ARG_CONCURRENCY_KEY		16

/*
 * awa_insert_job_args: read and validate awa_insert's arguments (its
 * signature: insert.c; also awa.ring_insert's, ring.c) into *job.  Raises
 * 22004 for a null required argument, 22023 naming a bad field, 23503/22023
 * for bad "after" ids or policy (deps.c) -- before anything is written.
 */
void
awa_insert_job_args(FunctionCallInfo fcinfo, AwaJob *job)
{
	char		bits[9];
	int			i;

	awa_check_not_null(fcinfo, 0, "kind");
	awa_check_not_null(fcinfo, 1, "args");
	awa_check_not_null(fcinfo, 2, "queue");
	awa_check_not_null(fcinfo, 3, "priority");
	awa_check_not_null(fcinfo, 4, "max_attempts");
	awa_check_not_null(fcinfo, 6, "tags");
	awa_check_not_null(fcinfo, 7, "metadata");

	memset(job, 0, sizeof(AwaJob));
	job->kind = PG_GETARG_TEXT_PP(0);
	job->args = PG_GETARG_JSONB_P(1);
	job->queue = PG_GETARG_TEXT_PP(2);
	job->priority = PG_GETARG_INT32(3);
	job->max_attempts = PG_GETARG_INT32(4);
	job->has_run_at = !PG_ARGISNULL(5);
	job->run_at = job->has_run_at ? PG_GETARG_TIMESTAMPTZ(5) : 0;
	job->tags = PG_GETARG_ARRAYTYPE_P(6);
	job->metadata = PG_GETARG_JSONB_P(7);
	/* 0.3.0's awa_insert has a 13th argument, timeout */
	job->timeout = PG_NARGS() > INSERT_ARG_TIMEOUT && !PG_ARGISNULL(INSERT_ARG_TIMEOUT) ?
		PG_GETARG_INTERVAL_P(INSERT_ARG_TIMEOUT) : NULL;
	/* and, added after it: group_id (groups.c), after and on_parent_failure
	 * (deps.c, below), concurrency_key (keylimit.c) */
	job->group_id = PG_NARGS() > INSERT_ARG_GROUP && !PG_ARGISNULL(INSERT_ARG_GROUP) ?
		PG_GETARG_TEXT_PP(INSERT_ARG_GROUP) : NULL;
	job->concurrency_key = PG_NARGS() > INSERT_ARG_CONCURRENCY_KEY &&
		!PG_ARGISNULL(INSERT_ARG_CONCURRENCY_KEY) ?
		PG_GETARG_TEXT_PP(INSERT_ARG_CONCURRENCY_KEY) : NULL;
	awa_validate_job(job);

	for (i = 8; i <= 9; i++)
		awa_check_not_null(fcinfo, i, i == 8 ? "unique_by_args" : "unique_by_queue");
	if (!PG_ARGISNULL(11))
		awa_unique_states_bits(PG_GETARG_ARRAYTYPE_P(11), bits);
	awa_job_set_unique(job, PG_GETARG_BOOL(8), PG_GETARG_BOOL(9),
					   awa_unique_period_arg(fcinfo, 10), PG_ARGISNULL(11) ? NULL : bits);

	/* deps.c: after (bigint[]) and on_parent_failure (text) */
	if (PG_NARGS() > INSERT_ARG_ON_PARENT_FAILURE)
	{
		awa_check_not_null(fcinfo, INSERT_ARG_ON_PARENT_FAILURE, "on_parent_failure");
		job->deps = awa_deps_from_array(PG_ARGISNULL(INSERT_ARG_AFTER) ? NULL :
										PG_GETARG_ARRAYTYPE_P(INSERT_ARG_AFTER),
										PG_GETARG_TEXT_PP(INSERT_ARG_ON_PARENT_FAILURE));
	}
}
