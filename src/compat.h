/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Version shims: every PG_VERSION_NUM test of awa lives here.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_COMPAT_H
#define AWA_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "awa requires PostgreSQL 15 or later"
#endif

#endif							/* AWA_COMPAT_H */
