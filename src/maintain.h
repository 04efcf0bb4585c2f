/*-------------------------------------------------------------------------
 *
 * maintain.h
 *		Declarations shared by maintain.c and schedule.c only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_MAINTAIN_H
#define AWA_MAINTAIN_H

/* At most this many jobs promoted, deleted or enqueued per round, each. */
#define AWA_MAINTAIN_BATCH			10000

/* At most this many missed fire times of one catch_up schedule per round. */
#define AWA_CATCH_UP_MAX			100

/* Told about a periodic job that could not be fired and is now stopped. */
typedef void (*AwaScheduleFailed) (const char *name, ErrorData *edata, void *arg);

/*
 * schedule.c: enqueue the jobs of periodic schedules that are due, in the
 * caller's transaction (connected to SPI).  Returns how many were enqueued.
 */
extern int64 awa_fire_schedules(AwaScheduleFailed on_failure, void *arg);

#endif							/* AWA_MAINTAIN_H */
