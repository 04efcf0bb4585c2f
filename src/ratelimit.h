/*-------------------------------------------------------------------------
 *
 * ratelimit.h
 *		Rate limits of queues (ratelimit.c): at most max_claims claims of a
 *		queue in any interval of length period, kept in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RATELIMIT_H
#define AWA_RATELIMIT_H

#include "datatype/timestamp.h"
#include "fmgr.h"

#define AWA_RATE_MAX_CLAIMS		1000	/* awa.queue_meta.rate_max_claims */
#define AWA_RATE_MIN_PERIOD_US	INT64CONST(1000)	/* 1 millisecond */
#define AWA_RATE_MAX_PERIOD_DAYS	31

/* A queue's rate, as awa.queue_meta holds it. */
typedef struct AwaRate
{
	int32		max_claims;
	int64		period_us;
	TimestampTz set_at;			/* rate_set_at: when the queue last got a rate */
} AwaRate;

/* One queue of a claim asking for claims under its rate. */
typedef struct AwaRateAsk
{
	const char *queue;
	AwaRate		rate;
	int			want;			/* claims it would make */
	int			granted;		/* out: claims it may make */
} AwaRateAsk;

extern void awa_rate_shmem_request(void);
extern void awa_rate_shmem_startup(void);
extern const char *awa_rate_limited_sql(void);
extern bool awa_rate_available(void);
extern bool awa_rate_read(int row, AwaRate *rate);
extern void awa_rate_attempt(void);
extern TimestampTz awa_rate_reserved_at(void);
extern TimestampTz awa_rate_reserve(AwaRateAsk *asks, int n, TimestampTz at);
extern void awa_rate_release(const char *queue, TimestampTz at, int unused);
extern long awa_rate_wait_ms(TimestampTz now);
extern long awa_rate_earlier(long a, long b);
extern bool awa_rate_admit_key(const char *key, const AwaRate *rate, TimestampTz x);
extern bool awa_rate_key_full(const char *key, const AwaRate *rate, TimestampTz x);
extern bool awa_rate_args(FunctionCallInfo fcinfo, int mi, int pi, AwaRate *rate);

/*
 * hook: rclaimx -- on a database whose jobs are in the ring, a rate's
 * window is rebuilt from the ring's receipts, not awa.jobs: this reads a
 * queue's claims since from, the newest max_claims of them, oldest first,
 * into t[] and count[] (palloc'd), returning how many times.  Set by
 * awa_engine_rate_init (engine_rate.c, from _PG_init), so that ratelimit.c
 * names none of the ring's functions (no circle between the C files).
 */
extern int	(*awa_rate_seed_ring) (const char *queue, TimestampTz from, int max_claims,
								   TimestampTz **t, int **count);

#endif							/* AWA_RATELIMIT_H */
