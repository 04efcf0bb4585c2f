/*-------------------------------------------------------------------------
 *
 * keylimit.h
 *		Per-key concurrency and ordering at claim time (keylimit.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_KEYLIMIT_H
#define AWA_KEYLIMIT_H

/* Largest max_running of a key rule (awa.key_limits). */
#define AWA_MAX_KEY_LIMIT		1000000

#include "datatype/timestamp.h"

extern void awa_keylimit_begin(TimestampTz at);
extern bool awa_keylimit_end(void);
extern bool awa_keylimit_open(text *key);

/*
 * hook: keys -- the running jobs of a key on the ring, added to the count
 * of awa.jobs' (*ring_only: awa.jobs is the ring's view, nothing else to
 * count); set by ring_keys.c (awa_ring_keys_init, from _PG_init), so that
 * this file does not call it.
 */
extern int64 (*awa_keylimit_ring_running) (text *key, bool *ring_only);

/* hook: keys -- whether a live ring job of the key has an id below id (ordered keys), as above */
extern bool (*awa_keylimit_ring_earlier) (text *key, int64 id, bool *ring_only);

#endif							/* AWA_KEYLIMIT_H */
