/*-------------------------------------------------------------------------
 *
 * awa.c
 *		Module entry point: settings and the set-up of the other parts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "awa.h"

PG_MODULE_MAGIC;

bool		awa_notify = true;
int			awa_priority_aging_interval = 60;
int			awa_heartbeat_timeout = 90;
int			awa_max_args_bytes = 1024 * 1024;
int			awa_max_error_bytes = 8192;
int			awa_max_errors_kept = 25;

void		_PG_init(void);

/*
 * Define awa's settings and hook into shared memory and transaction end.
 * Runs when the library is loaded: at server start when preloaded, else
 * at the first call of an awa function in a session.
 */
void
_PG_init(void)
{
	DefineCustomBoolVariable("awa.notify",
							 "Sends NOTIFY awa:<queue> when a job becomes available.",
							 "Listeners use it to wake up (a queue name longer than 59 bytes uses awa#<md5 of the name>).  With awa preloaded it is sent only while some session listens on an awa channel (awa:, awa# or awa.).",
							 &awa_notify,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("awa.priority_aging_interval",
							"A waiting job gains one priority level per this interval.",
							"0 turns aging off.",
							&awa_priority_aging_interval,
							60,
							0, 86400 * 365,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("awa.heartbeat_timeout",
							"A running job whose heartbeat is older than this is rescued.",
							NULL,
							&awa_heartbeat_timeout,
							90,
							1, 86400 * 7,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("awa.max_args_bytes",
							"Largest args, and largest metadata, of a job.",
							"Measured as stored jsonb; larger ones are refused with SQLSTATE 54000.",
							&awa_max_args_bytes,
							1024 * 1024,
							1024, (int) (MaxAllocSize / 2),
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("awa.max_error_bytes",
							"Longest error text kept in an entry of a job's errors.",
							"Longer texts (of awa_fail, or older entries when the history is rewritten) are cut at a character boundary; the entry then has \"truncated\": true and \"error_bytes\": the original length.",
							&awa_max_error_bytes,
							8192,
							64, (int) (MaxAllocSize / 2),
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("awa.max_errors_kept",
							"Most entries kept in a job's errors.",
							"A failure or rescue that would exceed it drops the oldest entries; each entry keeps its attempt number.",
							&awa_max_errors_kept,
							25,
							1, 10000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	awa_maintain_init();
	awa_dbstate_init();

	MarkGUCPrefixReserved("awa");

	awa_wake_init();
}
