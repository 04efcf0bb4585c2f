/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Version shims: every PG_VERSION_NUM test of awa lives here.
 *
 * Supported: PostgreSQL 15, the only major version awa is built and tested
 * on (META.json and the README's Compatibility section say the same).
 * Older versions are refused below: awa uses server APIs that 15 introduced
 * (shmem_request_hook, MarkGUCPrefixReserved, InitMaterializedSRF).  Newer
 * major versions are not refused here, but they have never been built or
 * tested, and no shims for them exist yet: supporting one means adding its
 * shims to this file and running the test suite on it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_COMPAT_H
#define AWA_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "awa requires PostgreSQL 15 or later"
#endif

#endif							/* AWA_COMPAT_H */
