/*-------------------------------------------------------------------------
 *
 * ring_part.c
 *		Statements of the ring read from one slot's partitions when only
 *		that slot holds rows (docs/storage.md, "Step 5: one slot's
 *		partitions").
 *
 * The ring's statements read awa.ready, awa.claims and awa.done, each
 * LIST-partitioned by slot.  Their plans are generic, so each execution
 * starts a plan over every partition: a merge of every ready partition's
 * claim index, and in each receipt probe an append of every claims or
 * done partition, pruned per row.  Starting and ending those nodes cost
 * more than the rows a claim of 10 reads (measured: the candidates'
 * statement 0.126 ms a call over the 4 slots, 0.089 ms over one slot's
 * partitions, 0.108 ms with the other slots pruned at executor start).
 * Most of the time one slot holds every row: a ring whose sealed slots
 * were reclaimed, or a new one.  Then the statement reads that slot's
 * partitions by name, and its plan has one scan per relation.
 *
 * Which slots hold rows: a partition's size in blocks (smgr), read after
 * the partitions are locked and the statement's snapshot is taken, in
 * that order (a reclaim's carry commits before the snapshot).  Rows leave
 * a partition only when the slot is reclaimed (TRUNCATE, which waits for
 * our AccessShareLock) or when VACUUM truncates empty pages (never pages
 * with a row a live snapshot can see), so a partition with no block holds
 * nothing the statement could see.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "lib/stringinfo.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "awa.h"
#include "ring_part.h"

/* See ring_part.h. */
uint64		awa_ring_slots_gen = 0;

/* the parent awa.<name>, opened with AccessShareLock; ERROR if missing */
static Relation
part_parent_open(const char *name)
{
	Oid			relid = get_relname_relid(name, get_namespace_oid("awa", false));

	if (!OidIsValid(relid))
		elog(ERROR, "awa: the ring's relation awa.%s is missing", name);
	return relation_open(relid, AccessShareLock);
}

/* the slot (FOR VALUES IN (slot)) of partition i of a LIST-partitioned parent, or -1 */
static int
part_slot(PartitionDesc pd, int i)
{
	PartitionBoundInfo b = pd->boundinfo;
	int			j;

	for (j = 0; b != NULL && j < b->ndatums; j++)
		if (b->indexes[j] == i)
			return DatumGetInt16(b->datums[j][0]);
	return -1;
}

/* See ring_part.h. */
int
awa_ring_sole_slot(const char *parent, bool latest, Snapshot *snap)
{
	Relation	rel = part_parent_open(parent);
	PartitionDesc pd = RelationGetPartitionDesc(rel, false);
	int			slot = -1;
	int			i;

	/* the locks first: a reclaim holding them commits before the snapshot */
	for (i = 0; i < pd->nparts; i++)
		LockRelationOid(pd->oids[i], AccessShareLock);
	if (snap != NULL)
		*snap = RegisterSnapshot(latest ? GetLatestSnapshot() : GetTransactionSnapshot());
	for (i = 0; i < pd->nparts; i++)
	{
		Relation	part = relation_open(pd->oids[i], NoLock);
		BlockNumber nblocks = RelationGetNumberOfBlocks(part);

		relation_close(part, NoLock);
		if (nblocks == 0)
			continue;
		if (slot != -1)
		{
			slot = -1;			/* a second one */
			break;
		}
		slot = part_slot(pd, i);
		if (slot < 0 || slot >= AWA_RING_SLOT_PLANS)
			break;
	}
	relation_close(rel, NoLock);
	return slot >= 0 && slot < AWA_RING_SLOT_PLANS ? slot : -1;
}

/* "awa.<partition of slot>" of awa.<parent>, quoted; ERROR if it has none */
static char *
part_name(const char *parent, int slot)
{
	Relation	rel = part_parent_open(parent);
	PartitionDesc pd = RelationGetPartitionDesc(rel, false);
	char	   *name = NULL;
	int			i;

	for (i = 0; i < pd->nparts && name == NULL; i++)
		if (part_slot(pd, i) == slot)
			name = quote_qualified_identifier("awa", get_rel_name(pd->oids[i]));
	relation_close(rel, NoLock);
	if (name == NULL)
		elog(ERROR, "awa: awa.%s has no partition for slot %d", parent, slot);
	return name;
}

/* See ring_part.h. */
SPIPlanPtr
awa_ring_slot_plan(SPIPlanPtr *cache, int slot, const char *sql, int nargs, const Oid *argtypes)
{
	static const char *const parents[] = {"ready", "claims", "done"};
	StringInfoData buf;
	const char *p = sql;

	Assert(slot >= 0 && slot < AWA_RING_SLOT_PLANS);
	if (cache[slot] != NULL)
		return cache[slot];

	/* each "FROM awa.<parent> " becomes "FROM <its partition of slot> " */
	initStringInfo(&buf);
	while (*p)
	{
		int			k;
		bool		done = false;

		for (k = 0; *p == 'F' && k < lengthof(parents) && !done; k++)
		{
			char	   *from = psprintf("FROM awa.%s ", parents[k]);
			size_t		len = strlen(from);

			if (strncmp(p, from, len) == 0)
			{
				appendStringInfo(&buf, "FROM %s ", part_name(parents[k], slot));
				p += len;
				done = true;
			}
			pfree(from);
		}
		if (!done)
			appendStringInfoChar(&buf, *p++);
	}
	return awa_plan(&cache[slot], buf.data, nargs, argtypes);
}
