/*-------------------------------------------------------------------------
 *
 * grouplock.c
 *		The two advisory locks of a group of jobs (see groups.c for what
 *		they order): taken when a job of a group is written (jobrow.c,
 *		copy.c) and when a group's jobs finish or its callback is registered
 *		(groups.c).  A file of its own so that writing a job row does not
 *		depend on groups.c, which enqueues through the executor.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"

#include "awa.h"

/*
 * Take one of a group's locks (space: AWA_GROUP_ENQUEUE_LOCK or
 * AWA_GROUP_FINISH_LOCK) until the end of the transaction.  The second key
 * is a hash of the group id: a collision only makes two groups wait for
 * each other.
 */
void
awa_group_lock(uint32 space, const char *group_id, int len, int mode)
{
	LOCKTAG		tag;
	uint32		h = DatumGetUInt32(hash_any((const unsigned char *) group_id, len));

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, space, h, 2);
	(void) LockAcquire(&tag, mode, false, false);
}

/*
 * A job of this group is being written: hold the group's enqueue lock
 * shared until the transaction ends, so that no callback of the group is
 * enqueued before its jobs are visible (groups.c).
 */
void
awa_group_lock_enqueue(text *group_id)
{
	awa_group_lock(AWA_GROUP_ENQUEUE_LOCK, VARDATA_ANY(group_id),
				   VARSIZE_ANY_EXHDR(group_id), ShareLock);
}
