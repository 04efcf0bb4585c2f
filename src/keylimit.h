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

#endif							/* AWA_KEYLIMIT_H */
