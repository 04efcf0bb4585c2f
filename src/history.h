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
#include "datatype/timestamp.h"

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

/*
 * hook: robs -- the events of jobs that are not rows of awa.jobs (the
 * ring's counting trigger, ring_obs.c), added up and written to
 * awa.history_deltas exactly as the trigger on awa.jobs writes its own.
 * awa_history_open: NULL when awa.track_history is off or the schema has no
 * awa.history_deltas (then call nothing else); memory in a context of its
 * own under CurrentMemoryContext.  awa_history_event: one event of a job of
 * (queue, kind) at time at; from (when has_from): for a start, the time the
 * job was due (a wait sample at - from); for an end (completed, failed,
 * retried, cancelled) of an attempt that ran, its start (a run sample).
 * awa_history_close: write the rows and free the memory.
 */
typedef enum AwaHistoryEvent
{
	AWA_HISTORY_ENQUEUED,
	AWA_HISTORY_STARTED,
	AWA_HISTORY_COMPLETED,
	AWA_HISTORY_FAILED,
	AWA_HISTORY_RETRIED,
	AWA_HISTORY_CANCELLED
} AwaHistoryEvent;

struct History;
extern struct History *awa_history_open(void);
extern void awa_history_event(struct History *h, text *queue, text *kind, AwaHistoryEvent ev,
							  TimestampTz at, bool has_from, TimestampTz from);
extern void awa_history_close(struct History *h);
/* hook: rdelta -- awa_history_open, or within a batch of jobs its notes (history.c) */
extern struct History *awa_history_open_statement(void);

#endif							/* AWA_HISTORY_H */
