/*-------------------------------------------------------------------------
 *
 * ring_admin.h
 *		Deleting jobs from the ring (ring_admin.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_ADMIN_H
#define AWA_RING_ADMIN_H

#include "fmgr.h"

/*
 * awa_ring_delete_jobs: delete the ring jobs whose ids are in ids (an
 * int8[]; ids the ring does not hold are skipped) with every row of theirs,
 * their unique keys, their own dependency and group rows, and their counts.
 * finished_only: only those completed, failed or cancelled when locked (the
 * others stay); else a job not finished is cancelled first
 * (awa.ring_cancel).  Returns how many jobs were deleted.  Caller checked
 * that the ring may run.
 */
extern int64 awa_ring_delete_jobs(Datum ids, bool finished_only);

#endif							/* AWA_RING_ADMIN_H */
