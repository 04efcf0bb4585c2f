/*-------------------------------------------------------------------------
 *
 * ring_lease.h
 *		Heartbeats, progress and rescue on the ring (ring_lease.c): what an
 *		attempt's deadline and progress are, for the ring's other sources
 *		(the awa.jobs-shaped view reads them).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_LEASE_H
#define AWA_RING_LEASE_H

#include "utils/jsonb.h"
#include "utils/timestamp.h"

/*
 * An attempt's current deadline: the deadline of its latest beat, else its
 * receipt's.  C is the alias of the attempt's receipt (awa.claims) in the
 * statement the text is pasted into; one index probe of awa.beats, the
 * slot pruned at run time.
 */
#define AWA_RING_DEADLINE_SQL(C) \
	"coalesce((SELECT b.deadline_at FROM awa.beats b WHERE b.job_id = " C ".job_id" \
	" AND b.run_lease = " C ".run_lease AND b.slot = " C ".slot ORDER BY b.at DESC LIMIT 1)," \
	" " C ".deadline_at)"

/*
 * A job's progress as of its attempt LEASE (ID, LEASE: SQL expressions):
 * the progress of the latest beat of the job's attempts up to that one
 * (every beat carries the job's progress forward, so the latest beat has
 * it; progress is kept across retries as awa_progress keeps it).  NULL: no
 * progress was ever recorded.  A backward walk of beats' (job_id,
 * run_lease, at) index in each slot, first row only.
 */
#define AWA_RING_PROGRESS_SQL(ID, LEASE) \
	"(SELECT b.progress FROM awa.beats b WHERE b.job_id = " ID " AND b.run_lease <= " LEASE \
	" ORDER BY b.run_lease DESC, b.at DESC LIMIT 1)"

/*
 * awa_ring_attempt_lease: for the attempt (job_id, run_lease): its current
 * deadline (AWA_RING_DEADLINE_SQL) in *deadline and the job's progress as of
 * that attempt (AWA_RING_PROGRESS_SQL; NULL: none, else a copy in the
 * current memory context) in *progress.  Returns false, setting neither,
 * when the attempt has no receipt (never claimed).  Reads with the usual
 * snapshot; says nothing of whether the attempt has ended (its done row).
 * The caller must be connected to SPI.
 */
extern bool awa_ring_attempt_lease(int64 job_id, int64 run_lease, TimestampTz *deadline,
								   Jsonb **progress);

#endif							/* AWA_RING_LEASE_H */
