/*-------------------------------------------------------------------------
 *
 * schema.c
 *		Which version of awa's tables the library is running against.
 *
 * Between installing a new awa.so and ALTER EXTENSION awa UPDATE, the
 * library serves the previous version's tables.  Code that reads or writes
 * a newer column asks here first, and builds its statements for the
 * schema it finds.  The answer is read from the catalogs (never from the
 * version string) and forgotten whenever awa.jobs or awa.queue_meta is
 * invalidated, e.g. by the ALTER TABLE of an update in another session.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "awa.h"

static int	features = -1;		/* bitmask of AwaSchemaFeature, -1 unknown */
static Oid	jobs_relid = InvalidOid;
static Oid	queue_meta_relid = InvalidOid;
static bool callback_set = false;

/* Forget what we know when one of awa's tables may have changed. */
static void
schema_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == jobs_relid || relid == queue_meta_relid)
		features = -1;
}

/* Whether relid has a column of that name. */
static bool
has_column(Oid relid, const char *name)
{
	return OidIsValid(relid) && get_attnum(relid, name) != InvalidAttrNumber;
}

/*
 * The features of the installed schema as a bitmask of AwaSchemaFeature
 * (0 when awa's schema is not there).  Cheap after the first call of a
 * session until the next invalidation.
 */
int
awa_schema_features(void)
{
	if (!callback_set)
	{
		CacheRegisterRelcacheCallback(schema_relcache_callback, (Datum) 0);
		callback_set = true;
	}
	if (features < 0)
	{
		Oid			nsp = get_namespace_oid("awa", true);
		int			f = 0;

		jobs_relid = OidIsValid(nsp) ? get_relname_relid("jobs", nsp) : InvalidOid;
		queue_meta_relid = OidIsValid(nsp) ? get_relname_relid("queue_meta", nsp) : InvalidOid;
		if (has_column(queue_meta_relid, "max_running"))
			f |= AWA_SCHEMA_QUEUE_LIMITS;
		if (has_column(queue_meta_relid, "rate_max_claims") &&
			has_column(queue_meta_relid, "rate_period") &&
			has_column(queue_meta_relid, "rate_set_at"))
			f |= AWA_SCHEMA_QUEUE_RATES;
		if (has_column(jobs_relid, "lease") && has_column(jobs_relid, "timeout"))
			f |= AWA_SCHEMA_LEASES;
		if (has_column(jobs_relid, "result") && has_column(jobs_relid, "callback_key"))
			f |= AWA_SCHEMA_EXTERNAL;
		if (OidIsValid(nsp) && OidIsValid(get_relname_relid("maintenance_rounds", nsp)))
			f |= AWA_SCHEMA_ROUNDS;
		if (OidIsValid(nsp) && OidIsValid(get_relname_relid("counter_folds", nsp)) &&
			OidIsValid(get_relname_relid("counter_fold_counts", nsp)) &&
			OidIsValid(get_relname_relid("counter_deltas", nsp)) &&
			OidIsValid(get_relname_relid("counter_completed", nsp)))
			f |= AWA_SCHEMA_COUNTERS;
		if (has_column(jobs_relid, "group_id") && OidIsValid(nsp) &&
			OidIsValid(get_relname_relid("group_callbacks", nsp)))
			f |= AWA_SCHEMA_GROUPS;
		if (OidIsValid(nsp) && OidIsValid(get_relname_relid("job_dependencies", nsp)) &&
			OidIsValid(get_relname_relid("dependent_jobs", nsp)))
			f |= AWA_SCHEMA_DEPENDENCIES;
		if (has_column(jobs_relid, "concurrency_key") && OidIsValid(nsp) &&
			OidIsValid(get_relname_relid("key_limits", nsp)))
			f |= AWA_SCHEMA_KEYS;
		if (OidIsValid(nsp) && has_column(get_relname_relid("key_limits", nsp), "rate_max_claims"))
			f |= AWA_SCHEMA_KEY_RATES;
		if (OidIsValid(jobs_relid) && get_rel_relkind(jobs_relid) == RELKIND_VIEW)
			f |= AWA_SCHEMA_RING_ENGINE;
		features = f;
	}
	return features;
}

/* Whether the installed schema has feature f (an AwaSchemaFeature). */
bool
awa_schema_has(int f)
{
	return (awa_schema_features() & f) != 0;
}

/*
 * Raise feature_not_supported (0A000) naming what needs a newer schema,
 * when the installed one lacks feature f.
 */
void
awa_require_schema(int f, const char *what)
{
	if (!awa_schema_has(f))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s needs a newer awa schema than the one installed in this database", what),
				 errhint("Run ALTER EXTENSION awa UPDATE.")));
}
