/*-------------------------------------------------------------------------
 *
 * floor.h
 *		Claim floors (floor.c): per (queue, priority) a key in shared memory
 *		below which no job of that lane is claimable, so that a claim can
 *		start its index scan past the dead head of the claim index.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_FLOOR_H
#define AWA_FLOOR_H

#include "datatype/timestamp.h"
#include "utils/snapshot.h"

#define AWA_FLOOR_PRIORITIES	4	/* = AWA_MAX_PRIORITY */

/* A position in a lane: (run_at, id), the order of the claim index. */
typedef struct AwaFloorKey
{
	TimestampTz run_at;
	int64		id;
} AwaFloorKey;

/* One claim's use of its queue's floors (awa_floor_begin .. _end). */
typedef struct AwaFloorScan
{
	int			lane;			/* index in shared memory, -1: no floors */
	uint64		seq;			/* end of the removal log when read */
	uint32		resets;			/* the lane's resets when read */
	Snapshot	snapshot;		/* taken after the read, before the claim */
	AwaFloorKey floors[AWA_FLOOR_PRIORITIES];	/* where the scans start */
	bool		taken[AWA_FLOOR_PRIORITIES];	/* the claim took jobs there */
	bool		ask[AWA_FLOOR_PRIORITIES];	/* probe there too (found nothing) */
	TimestampTz taken_min;		/* lowest run_at it took, any priority */
	bool		resetting;		/* this claim does the lane's reset (reads from the head) */
	bool		walker;			/* the claim walks resets in chunks (awa_floor_walked) */
	bool		walk;			/* a walk is under way: walk a chunk of walk_left's priorities */
	uint32		walk_gen;
	bool		walk_left[AWA_FLOOR_PRIORITIES];
	AwaFloorKey walk_from[AWA_FLOOR_PRIORITIES];	/* each chunk starts after this key */
} AwaFloorScan;

/*
 * Finds, as scan->snapshot sees it, the first waiting job at or above the
 * floor of each priority the claim took jobs of (found[p] false: none).
 */
typedef void (*AwaFloorProbe) (AwaFloorScan *scan, Datum arg,
							   AwaFloorKey *first, bool *found);

extern void awa_floor_init(void);
extern void awa_floor_shmem_request(void);
extern void awa_floor_shmem_startup(void);
extern void awa_floor_note(const char *queue, TimestampTz run_at);
extern TimestampTz awa_floor_noted(const char *queue);	/* hook: robs, rclaim */
extern void awa_floor_begin(AwaFloorScan *scan, const char *queue, bool walker);
extern void awa_floor_begin_at(AwaFloorScan *scan, const char *queue, Snapshot at,
							   AwaFloorKey *start);	/* hook: rstats */
extern bool awa_floor_seen_all(Snapshot at, TransactionId xmax);	/* hook: rstats */
extern void awa_floor_begin_many(AwaFloorScan *scans, char **queues, int n, bool walker);
extern bool awa_floor_at_end(const AwaFloorScan *scan, int priority);
extern void awa_floor_taken(AwaFloorScan *scan, int priority, TimestampTz run_at);
extern void awa_floor_defer(AwaFloorScan *scan, int njobs);
extern void awa_floor_end(AwaFloorScan *scan, Datum queue);
extern void awa_floor_walked(AwaFloorScan *scan, int priority, bool found, AwaFloorKey first,
							 bool reached, AwaFloorKey last);
extern void awa_floor_end_with(AwaFloorScan *scan, const char *lane,
							   AwaFloorProbe probe, Datum probe_arg);
extern bool awa_floor_probe_args(const AwaFloorScan *scan, Datum queue,
								 Datum *values, bool *found);
extern void awa_floor_probe_read(AwaFloorKey *first, bool *found);
extern Datum awa_floor_run_ats(const AwaFloorScan *scan);
extern Datum awa_floor_ids(const AwaFloorScan *scan);

#endif							/* AWA_FLOOR_H */
