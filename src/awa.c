/*-------------------------------------------------------------------------
 *
 * awa.c
 *		Module entry point: the set-up of the other parts, each of which
 *		defines its own settings.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "awa.h"
#include "history.h"
#include "ring.h"
#include "ring_flow.h"		/* hook: rflow */
#include "ring_sched.h"
#include "ring_unique.h"
#include "ring_deps.h"		/* hook: rdeps */
#include "ring_enq.h"		/* hook: renq */
#include "ring_keys.h"		/* hook: keys */
#include "engine_claim.h"	/* hook: rclaimx */
#include "ring_claim.h"		/* hook: rclaim */
#include "engine_admin.h"	/* hook: rjit */

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Define awa's settings (each part's own), then reserve the awa. prefix so
 * that a misspelt setting is reported, and hook into shared memory,
 * transaction end and statement end (the job counters).  Runs when the
 * library is loaded: at server start when preloaded, else at the first call
 * of an awa function in a session.
 */
void
_PG_init(void)
{
	awa_notify_init();
	awa_claim_init();
	awa_job_init();
	awa_validate_init();
	awa_maintain_init();
	awa_history_init();
	awa_dbstate_init();
	awa_ring_init();
	awa_ring_sched_init();
	awa_ring_unique_init();	/* hook: unique */
	awa_ring_ext_init();	/* hook: rext */
	awa_ring_flow_init();	/* hook: rflow */
	awa_ring_deps_init();	/* hook: rdeps */
	awa_ring_enq_init();	/* hook: renq */
	awa_ring_keys_init();	/* hook: keys */
	awa_engine_rate_init();	/* hook: rclaimx */
	awa_ring_claim_init();	/* hook: rclaim */
	awa_engine_jit_init();	/* hook: rjit */

	MarkGUCPrefixReserved("awa");

	awa_shmem_init();
	awa_wake_init();
	awa_counters_init();
}
