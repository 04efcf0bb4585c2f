/*-------------------------------------------------------------------------
 *
 * ring.h
 *		The ring (ring.c): the storage engine of docs/storage.md beside
 *		awa.jobs, internal and switched off (awa.ring_engine).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_RING_H
#define AWA_RING_H

extern void awa_ring_init(void);

#endif							/* AWA_RING_H */
