/*-------------------------------------------------------------------------
 *
 * job_state.h
 *		The job states in C, made from job_state.def: an enum whose values
 *		are the positions in awa.job_state (and the bits of unique_states),
 *		the labels, set membership, and the sets as SQL lists
 *		(job_state_sql.h, written by scripts/gen_states.py).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_JOB_STATE_H
#define AWA_JOB_STATE_H

#include "job_state_sql.h"

typedef enum AwaJobState
{
#define AWA_JOB_STATE(NAME, label, waiting, held, final, retry, unique) \
	AWA_STATE_##NAME,
#include "job_state.def"
#undef AWA_JOB_STATE
	AWA_NUM_JOB_STATES
} AwaJobState;

/* The sets a state belongs to (columns of job_state.def). */
#define AWA_SET_WAITING		(1 << 0)
#define AWA_SET_HELD		(1 << 1)
#define AWA_SET_FINAL		(1 << 2)
#define AWA_SET_RETRY		(1 << 3)
#define AWA_SET_UNIQUE		(1 << 4)
#define AWA_SET_LIVE		(AWA_SET_WAITING | AWA_SET_HELD)

/* job.c */
extern const char *awa_state_label(AwaJobState state);
extern bool awa_state_in(AwaJobState state, int sets);
extern int	awa_state_bit(const char *label);

/*
 * The job is running, in a form that does not match the predicate of the
 * partial index of running jobs (jobs_running_idx), so one-job
 * statements (awa_complete, awa_fail, awa_snooze, awa_progress, the
 * callbacks') find their row by primary key.  Their generic plans
 * would otherwise read that index, whose entries of every job completed
 * since the oldest snapshot in the cluster can be neither removed nor
 * marked dead while that snapshot lives: under a held snapshot each call
 * walked all of them (25-45 ms after 65,000 jobs, measured at 1 M).
 */
#define AWA_RUNNING_SQL "state::text = 'running'"

#endif							/* AWA_JOB_STATE_H */
