/*-------------------------------------------------------------------------
 *
 * history.h
 *		Per-minute throughput history (history.c): what the job counters'
 *		trigger, the direct insert path and maintenance call.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_HISTORY_H
#define AWA_HISTORY_H

#include "commands/trigger.h"

/*
 * Durations are counted in fixed log-scale buckets: bucket 0 holds
 * [0, 1 ms), bucket b >= 1 holds [2^((b-1)/4) ms, 2^(b/4) ms), so each
 * bucket is 19% wider than the one before; bucket AWA_HISTORY_TOP_BUCKET
 * (from 2^(159/4) ms, about 30 years) also holds everything longer.
 */
#define AWA_HISTORY_PER_DOUBLING	4
#define AWA_HISTORY_TOP_BUCKET		160

extern void awa_history_init(void);
extern void awa_history_changes(TriggerData *td);
extern void awa_history_note_insert(const char *queue, const char *kind);
extern void awa_history_write_notes(bool all);
extern int64 awa_history_fold(void);
extern int64 awa_history_expire(int retention_secs);

#endif							/* AWA_HISTORY_H */
