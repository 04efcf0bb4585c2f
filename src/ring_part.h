/*-------------------------------------------------------------------------
 *
 * ring_part.h
 *		Statements of the ring read from one slot's partitions when only
 *		that slot holds rows (ring_part.c; docs/storage.md, "Step 5: one
 *		slot's partitions").
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_PART_H
#define AWA_RING_PART_H

#include "executor/spi.h"
#include "utils/snapshot.h"

/*
 * awa_ring_slots_gen: bumped by every write of awa.ring_slots by awa's code
 * (ring_slots.c's rotation, ring_dump.c's restore), so that a reader that
 * keeps the open slot for a statement (ring_enq.c) reads it again after the
 * transaction changed it.  Only awa's code writes that table (no role is
 * granted any write on awa's tables; a write by their owner is seen at the
 * next statement, or within a second).
 */
extern uint64 awa_ring_slots_gen;

/* slots 0 .. AWA_RING_SLOT_PLANS - 1 get plans of their own; others the parent's */
#define AWA_RING_SLOT_PLANS		16

/*
 * awa_ring_sole_slot: lock awa.<parent> ("ready", "claims" or "done") and
 *		each of its partitions (AccessShareLock, held to the end of the
 *		transaction, as the statement would; a reclaim holding them is
 *		waited for), then take the statement's snapshot into *snap
 *		(registered: the caller unregisters it; the newest if latest, else
 *		the transaction's, as SPI would), then return the slot (0 ..
 *		AWA_RING_SLOT_PLANS - 1) of the one partition that has any block,
 *		or -1 when none has, several have, or the slot is out of that range.
 *		In that order: a reclaim's carry commits before the snapshot, and a
 *		row the snapshot can see is in a partition that has a block now
 *		(rows leave the ring's partitions only by TRUNCATE of a finished
 *		slot, and VACUUM cannot remove a row a live snapshot sees), so a
 *		statement run with *snap that reads only the sole slot's partitions
 *		misses nothing.  Reads each partition's size (smgr, no scan).
 *		snap NULL: no snapshot is taken; for a statement whose snapshot
 *		was taken after the caller locked the partitions (a row it sees
 *		left a partition since only by a TRUNCATE, which every reader
 *		would miss alike).
 * awa_ring_slot_plan: the kept plan of sql (whose text names awa.ready,
 *		awa.claims and awa.done after FROM) with those reads turned into
 *		reads of slot's partitions (found by their bounds, FOR VALUES IN
 *		(slot)); cache is an array of AWA_RING_SLOT_PLANS plans, one per
 *		slot, prepared at a slot's first use.  INSERT INTO targets stay the
 *		parents (their statement triggers count the rows).  Caller is in
 *		SPI.  An ERROR (XX000) if a relation has no partition for slot.
 */
extern int	awa_ring_sole_slot(const char *parent, bool latest, Snapshot *snap);
extern SPIPlanPtr awa_ring_slot_plan(SPIPlanPtr *cache, int slot, const char *sql,
									 int nargs, const Oid *argtypes);

#endif							/* AWA_RING_PART_H */
