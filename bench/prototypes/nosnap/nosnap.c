/*
 * nosnap.c — throwaway experiment for docs/storage.md (not part of awa).
 *
 * nosnap_wait(total_ms, poll_ms): a procedure that waits like a blocking claim of an idle queue, but
 * commits before each sleep.  Each round runs one claim-shaped query (in its own transaction, with its
 * own snapshot), commits, and sleeps poll_ms on its latch with no transaction snapshot and no active
 * snapshot, until total_ms have passed.  Called with CALL outside a transaction block (non-atomic
 * context); inside one it refuses, since it could not commit.
 *
 * nosnap_sleep_in_statement(total_ms): the same sleep inside an ordinary function call (a SELECT),
 * for comparison: the statement's snapshot stays registered and active for the whole sleep.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(nosnap_wait);
PG_FUNCTION_INFO_V1(nosnap_sleep_in_statement);

static void
sleep_ms(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

Datum
nosnap_wait(PG_FUNCTION_ARGS)
{
	int64		total_ms = PG_GETARG_INT64(0);
	int64		poll_ms = PG_GETARG_INT64(1);
	bool		atomic = !(fcinfo->context && IsA(fcinfo->context, CallContext) &&
						   !castNode(CallContext, fcinfo->context)->atomic);
	TimestampTz end = GetCurrentTimestamp() + total_ms * 1000;

	if (atomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("nosnap_wait must be called with CALL outside a transaction block")));
	SPI_connect_ext(SPI_OPT_NONATOMIC);
	for (;;)
	{
		/* one claim-shaped attempt, with its own snapshot */
		if (SPI_execute("SELECT id FROM awa.jobs WHERE queue = 'nosnap-idle' AND state = 'available' LIMIT 1",
						true, 1) != SPI_OK_SELECT)
			elog(ERROR, "nosnap_wait: query failed");
		if (SPI_processed > 0 || GetCurrentTimestamp() >= end)
			break;
		/* end the transaction: portal snapshots are dropped (ForgetPortalSnapshots), xmin is cleared */
		SPI_commit();
		sleep_ms((long) Min(poll_ms, (end - GetCurrentTimestamp()) / 1000 + 1));
	}
	SPI_finish();
	PG_RETURN_VOID();
}

Datum
nosnap_sleep_in_statement(PG_FUNCTION_ARGS)
{
	int64		total_ms = PG_GETARG_INT64(0);

	sleep_ms((long) total_ms);
	PG_RETURN_VOID();
}
