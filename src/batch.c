/*-------------------------------------------------------------------------
 *
 * batch.c
 *		Batches of jobs written one statement per job (batch.h; docs/
 *		storage.md, "Step 5: one delta row per statement on the ring").
 *
 * The ring writes each job of awa_insert_many, and of an INSERT or COPY
 * into its view awa.jobs, with an SPI statement of its own, and its
 * counting trigger adds up per statement.  Such a call or statement is a
 * batch: its sums are kept as notes and written once at its end
 * (counters.c, "Batches").  This file only knows which batches are open,
 * the subtransaction each was opened in, innermost last: a batch opened
 * in a subtransaction that aborts (an error inside it) ends with it, and
 * none may be open at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"

#include "batch.h"
#include "ring_enq.h"

#define BATCH_MAX_DEPTH		32

static SubTransactionId batches[BATCH_MAX_DEPTH];
static int	nbatches = 0;
static bool callbacks_registered = false;

void		(*awa_batch_end_hook) (void) = NULL;

/* hook: renq -- set by awa_ring_enq_init (ring_enq.h) */
void		(*awa_ring_enq_flush_hook) (void) = NULL;

static void
batch_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* every batch ends with the statement that opened it */
			if (nbatches > 0)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("awa: %d batch(es) of jobs still open at commit", nbatches)));
			break;
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			break;
		default:
			nbatches = 0;
			break;
	}
}

static void
batch_subxact_cb(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	/* opened in the aborted subtransaction or below it: ended with it */
	if (event == SUBXACT_EVENT_ABORT_SUB)
		while (nbatches > 0 && batches[nbatches - 1] >= mySubid)
			nbatches--;
}

void
awa_batch_begin(void)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(batch_xact_cb, NULL);
		RegisterSubXactCallback(batch_subxact_cb, NULL);
		callbacks_registered = true;
	}
	if (nbatches >= BATCH_MAX_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("awa: more than %d nested batches of jobs", BATCH_MAX_DEPTH)));
	batches[nbatches++] = GetCurrentSubTransactionId();
}

void
awa_batch_end(void)
{
	if (nbatches == 0)
		return;					/* ended by an abort already */
	/* hook: renq -- the batch's kept jobs, counted inside it (ring_enq.c) */
	if (awa_ring_enq_flush_hook != NULL)
		awa_ring_enq_flush_hook();
	nbatches--;
	if (nbatches == 0 && awa_batch_end_hook != NULL)
		awa_batch_end_hook();
}

SubTransactionId
awa_batch_innermost_subxact(void)
{
	return nbatches > 0 ? batches[nbatches - 1] : InvalidSubTransactionId;
}

bool
awa_batch_active(void)
{
	return nbatches > 0;
}
