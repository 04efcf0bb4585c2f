/* Made by scripts/gen_states.py from src/job_state.def: do not edit. */
#ifndef AWA_JOB_STATE_SQL_H
#define AWA_JOB_STATE_SQL_H

/* The state sets as SQL lists, for "state IN " in saved statements. */
/* a job can still leave by itself (awa_cancel cancels these) */
#define AWA_STATES_LIVE_SQL "('scheduled', 'available', 'running', 'retryable', 'waiting_external')"
/* claimable once run_at has come */
#define AWA_STATES_WAITING_SQL "('scheduled', 'available', 'retryable')"
/* waiting, but not yet available: maintenance promotes them when due */
#define AWA_STATES_PROMOTABLE_SQL "('scheduled', 'retryable')"
/* waiting to run or on an external system (awa_drain_queue cancels these) */
#define AWA_STATES_QUEUED_SQL "('scheduled', 'available', 'retryable', 'waiting_external')"
/* a worker holds it: cancelling it tells the worker */
#define AWA_STATES_HELD_SQL "('running', 'waiting_external')"
/* finished */
#define AWA_STATES_FINAL_SQL "('completed', 'failed', 'cancelled')"
/* an operator may retry it (awa_retry) */
#define AWA_STATES_RETRY_SQL "('failed', 'cancelled', 'waiting_external')"

/* unique_states bit strings (bit i = state i of awa.job_state). */
/* Default unique_states of a unique job. */
#define AWA_DEFAULT_UNIQUE_STATES "11111001"
/*
 * The states every unique_states set must hold (the live ones): awa
 * moves a job between them by itself, so a key held in some and not
 * others would collide in awa's own transitions.  Also a CHECK
 * constraint on awa.jobs (jobs_unique_states_live).
 */
#define AWA_LIVE_UNIQUE_STATES "11101001"

#endif							/* AWA_JOB_STATE_SQL_H */
