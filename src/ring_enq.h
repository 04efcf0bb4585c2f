/*-------------------------------------------------------------------------
 *
 * ring_enq.h
 *		A batch's plain new jobs written into the ring with one statement
 *		(ring_enq.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_ENQ_H
#define AWA_RING_ENQ_H

#include "datatype/timestamp.h"

struct AwaJob;

/*
 * awa_ring_enq_insert: enqueue a plain new job (checked, due at run_at, now
 *		or earlier; no unique key, parents, group or concurrency key) into
 *		the ring's open slot, the way awa.ready's INSERT would, and set *id
 *		to its id (awa.jobs_id_seq).  Inside a batch opened in the current
 *		subtransaction its row is kept and written with the batch's others;
 *		else written at once.  Returns false, having done nothing, for a job
 *		that is not plain, or while rows of an outer subtransaction are kept:
 *		the caller's statement writes it.  Call as the ring's owner.
 * awa_ring_enq_flush: write the kept rows of the current subtransaction
 *		into the open slot (55000 without an open slot); rows kept by an
 *		outer subtransaction are left for it.  batch.c calls it at every
 *		batch's end, ring.c before a job it writes by a statement.
 */
extern bool awa_ring_enq_insert(const struct AwaJob *job, TimestampTz run_at, int64 *id);
extern void awa_ring_enq_flush(void);

/*
 * hook: renq -- ring.c and batch.c call these through pointers (defined
 * there, set by awa_ring_enq_init from _PG_init), so that no C file of src/
 * calls back into one that calls it.
 */
extern bool (*awa_ring_enq_insert_hook) (const struct AwaJob *job, TimestampTz run_at, int64 *id);
extern void (*awa_ring_enq_flush_hook) (void);
extern void awa_ring_enq_init(void);

#endif							/* AWA_RING_ENQ_H */
