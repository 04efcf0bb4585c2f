/*-------------------------------------------------------------------------
 *
 * deps.h
 *		Job dependencies (deps.c): a job that runs after other jobs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_DEPS_H
#define AWA_DEPS_H

#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

/*
 * The run_at of a job that waits for parents: never due, and a time every
 * client can read (Python's datetime and others cannot hold 'infinity';
 * a day below 9999-12-31 leaves room for any time zone's offset).
 */
#define AWA_DEPS_WAIT_RUN_AT_SQL	"'9999-12-30 00:00:00+00'::timestamptz"
#define AWA_DEPS_WAIT_RUN_AT \
	((TimestampTz) (date2j(9999, 12, 30) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY)

/* At most this many parents a job (22023 beyond). */
#define AWA_MAX_PARENTS			1000

/* What a waiting job does when a parent fails for good or is cancelled. */
typedef enum AwaParentFailure
{
	AWA_ON_PARENT_FAILURE_CANCEL = 0,	/* cancel the dependent (default) */
	AWA_ON_PARENT_FAILURE_RUN,	/* count the parent as done: run anyway */
	AWA_ON_PARENT_FAILURE_WAIT	/* keep waiting, for a retry of the parent */
} AwaParentFailure;

/* The parents a new job names, and what the insert found out about them. */
typedef struct AwaDeps
{
	int			n;				/* distinct parents, ascending */
	int64	   *parents;
	AwaParentFailure on_failure;
	/* set by awa_deps_before_insert */
	bool	   *satisfied;		/* per parent */
	int			waiting_for;	/* parents not satisfied */
	int64		cancel_by;		/* a failed or cancelled parent that cancels it, or 0 */
	const char *cancel_state;	/* that parent's state */
	bool		has_run_at;		/* the run_at the caller asked for */
	TimestampTz run_at;
} AwaDeps;

struct AwaJob;
struct AwaEnqueue;

extern AwaDeps *awa_deps_from_array(ArrayType *after, text *on_failure);
extern AwaDeps *awa_deps_from_json(JsonbValue *after, AwaDeps *deps);
extern AwaDeps *awa_deps_policy_from_json(JsonbValue *policy, AwaDeps *deps);
extern void awa_deps_before_insert(struct AwaJob *job);
extern void awa_deps_after_insert(struct AwaEnqueue *e, struct AwaJob *job);
extern Datum awa_int8_array(const int64 *values, int n);

/*
 * A retention condition on a finished job J (an alias of awa.jobs): no job
 * that names it as a parent is still unfinished (waiting, running, or
 * about to retry), so its result stays readable until they ran.
 */
#define AWA_DEPS_NOT_NEEDED_SQL(J) \
	" AND NOT EXISTS (SELECT 1 FROM awa.job_dependencies awa_dep" \
	"   JOIN awa.jobs awa_child ON awa_child.id = awa_dep.job_id" \
	"   WHERE awa_dep.parent_id = " J ".id" \
	"   AND awa_child.state NOT IN " AWA_STATES_FINAL_SQL ")"

#endif							/* AWA_DEPS_H */
