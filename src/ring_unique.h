/*-------------------------------------------------------------------------
 *
 * ring_unique.h
 *		The ring's unique jobs (ring_unique.c): the hook ring.c calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_UNIQUE_H
#define AWA_RING_UNIQUE_H

#include "fmgr.h"

/*
 * reserve: called by ring_insert (in SPI) with the job as read by
 * awa_insert_job_args (job->unique: its key and states, or NULL) and its
 * statement's values (RING_INSERT_NARGS, ring.h).  Fills values/nulls
 * [6..8]: the job's id (NULL: not unique, ring_insert draws one), its
 * unique key and unique_states ("01..." text), both NULL when the job is
 * not unique.  Returns the id of the job holding the key when
 * another one does (nothing may be inserted then), else 0.  Set by
 * awa_ring_unique_init (from _PG_init), so that ring.c does not name
 * ring_unique.c's functions (scripts/lint.sh: no circles).  Defined in
 * ring.c.
 */
struct AwaJob;
typedef int64 (*AwaRingUniqueReserve) (struct AwaJob *job, Datum *values, char *nulls);

extern AwaRingUniqueReserve awa_ring_unique_reserve;
extern void awa_ring_unique_init(void);

#endif							/* AWA_RING_UNIQUE_H */
