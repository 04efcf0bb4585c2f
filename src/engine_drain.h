/*-------------------------------------------------------------------------
 *
 * engine_drain.h
 *		awa_drain_queue on the ring engine (engine_drain.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_ENGINE_DRAIN_H
#define AWA_ENGINE_DRAIN_H

#include "postgres.h"

/*
 * awa_engine_drain_waiting: cancel the jobs of the queue (text) that wait to
 * run or wait on an external system, in id order, each only if it still
 * waits once a claim in progress of it has ended; returns how many were
 * cancelled.  Call outside SPI.
 */
extern int64 awa_engine_drain_waiting(Datum queue);

#endif							/* AWA_ENGINE_DRAIN_H */
