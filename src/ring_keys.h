/*-------------------------------------------------------------------------
 *
 * ring_keys.h
 *		Per-key concurrency limits and rates on the ring's claim
 *		(ring_keys.c): the rules of awa.key_limits, kept as awa_claim keeps
 *		them (keylimit.c), for ready rows with a concurrency key.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_KEYS_H
#define AWA_RING_KEYS_H

#include "datatype/timestamp.h"

/*
 * The conditions of the ring claim's statements on a candidate K (an alias
 * of awa.ready or of a subquery over it with its concurrency_key, kind and
 * id): RING_KEY_OPEN_SQL before the row is locked (a key this claim found
 * at its limit, busy or at its rate is skipped without a lock),
 * RING_KEY_ADMIT_SQL above the lock, below the LIMIT (a locked row with a
 * key is taken only if admitted; the LIMIT counts admitted rows).  A row
 * without a key pays one IS NULL test in each.
 */
#define RING_KEY_OPEN_SQL(K) \
	" AND (" K ".concurrency_key IS NULL OR awa.concurrency_key_open(" K ".concurrency_key))"
#define RING_KEY_ADMIT_SQL(K) \
	"(" K ".concurrency_key IS NULL OR awa.ring_key_admit(" K ".concurrency_key, " K ".kind, " K ".id))"

/*
 * A ring claim (awa.ring_claim, of one queue or of several) calls
 * awa_ring_keys_begin before its queues' settings are read (at: the claim's
 * time, now()), awa_ring_keys_claimed for each attempt that got its receipt,
 * and awa_ring_keys_end before it lets go of SPI: the admitted attempts with
 * a key are written to awa.ring_key_running, and a blocking claim's probe
 * (ring_flow.c) learns of a key passed over (at its limit or busy: at_limit)
 * or at its rate (the next slot).  Caller of the last two is in SPI.
 */
extern void awa_ring_keys_begin(TimestampTz at);
extern void awa_ring_keys_claimed(int64 id, int64 run_lease);
extern void awa_ring_keys_end(void);

/*
 * hook: keys -- ring_wait.c's attempt, after its claim and its own
 * reckoning of *due_ms (-1: none) and *at_limit: a key passed over makes
 * it wait as at a limit; a key at its rate wakes it when the key's next
 * slot opens, if that is earlier.
 */
extern void awa_ring_keys_wait(long *due_ms, bool *at_limit);

/*
 * hook: keys -- keylimit.c's count of a key's running jobs (through
 * awa_keylimit_ring_running, set by awa_ring_keys_init): the key's
 * running ring attempts (0 unless the ring is in use: awa.ring_engine on,
 * or a database whose jobs are in the ring); *ring_only when awa.jobs is
 * the ring's view (then nothing else is to be counted).  Caller holds the
 * key's lock; not in SPI.
 */
extern int64 awa_ring_keys_running(text *key, bool *ring_only);

/*
 * hook: keys -- keylimit.c's "an earlier live job of the key" (ordered
 * keys): whether a live ring job of the key has an id below id; as above.
 */
extern bool awa_ring_keys_earlier(text *key, int64 id, bool *ring_only);

/* From _PG_init: sets keylimit.c's hooks to these two. */
extern void awa_ring_keys_init(void);

#endif							/* AWA_RING_KEYS_H */
