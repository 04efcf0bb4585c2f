/*-------------------------------------------------------------------------
 *
 * shard.c
 *		Shard-aware job ids: awa_shard_configure, awa_shard, awa_shard_of.
 *
 * When several databases each run awa behind a router (docs/sharding.md),
 * a job id must be unique across all of them and must say which database
 * holds the job, so that a call naming only the id can be sent there.  The
 * rule: the high bits of an id are its shard number,
 *
 *		shard = id >> 48			(ids of shard k: k * 2^48 .. (k+1) * 2^48 - 1)
 *
 * awa_shard_configure(k) confines the identity sequence of awa.jobs.id to
 * that range, so every insert path (awa_insert, awa_insert_many, INSERT and
 * COPY into awa.jobs, periodic jobs) hands out ids of shard k without any
 * change to them.  Why high bits rather than "id mod number of shards": the
 * number of shards is not part of the rule, so a fleet can grow without
 * renumbering, and the ids of a database that was alone before (all below
 * 2^48) already belong to shard 0.  A sequence restored by pg_dump keeps its
 * position, which stays inside the range; only the range's end is lost
 * (configure again after a restore).
 *
 * Limits: shards 0 .. 32767 (ids stay positive bigints); 2^48 (about 2.8e14)
 * ids per shard, after which inserts fail (2200H) instead of taking ids of
 * the next shard.  Ids of shards >= 32 exceed 2^53, the largest integer a
 * JavaScript number holds exactly.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "awa.h"

#define AWA_SHARD_BITS		48
#define AWA_SHARD_MAX		32767

PG_FUNCTION_INFO_V1(awa_shard_of);
PG_FUNCTION_INFO_V1(awa_shard);
PG_FUNCTION_INFO_V1(awa_shard_configure);

/*
 * awa_shard_of(job_id bigint) RETURNS integer: the shard that holds a job
 * id (its bits above 2^48).  Negative ids (never handed out) are refused
 * with 22003.
 */
Datum
awa_shard_of(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);

	if (id < 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("job id %lld is negative", (long long) id),
				 errdetail("Job ids are positive; their bits above 2^48 name the shard.")));
	PG_RETURN_INT32((int32) (id >> AWA_SHARD_BITS));
}

/*
 * The OID of the identity sequence of awa.jobs.id.  In a database on the ring
 * engine awa.jobs is a view and the ring takes its ids from the same sequence,
 * owned by the table kept as awa.jobs_table (src/sql/engine.sql).
 */
static Oid
jobs_id_sequence(void)
{
	Oid			nsp = get_namespace_oid("awa", false);
	Oid			relid = get_relname_relid("jobs", nsp);
	AttrNumber	attnum;

	/* hook: rcrash -- the ring engine */
	if (OidIsValid(relid) && get_rel_relkind(relid) == RELKIND_VIEW)
		relid = get_relname_relid("jobs_table", nsp);
	if (!OidIsValid(relid))
		elog(ERROR, "table awa.jobs does not exist");
	attnum = get_attnum(relid, "id");
	if (attnum == InvalidAttrNumber)
		elog(ERROR, "column awa.jobs.id does not exist");
	return getIdentitySequence(relid, attnum, false);
}

/* "schema"."name" of a relation, for SQL text. */
static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* Run one statement through SPI (connected) and return the first column of its row as int64. */
static int64
spi_int64(const char *sql, bool *isnull)
{
	Datum		d;

	if (SPI_execute(sql, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "awa: unexpected result from \"%s\"", sql);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	return *isnull ? 0 : DatumGetInt64(d);
}

/*
 * awa_shard() RETURNS integer: the shard this database hands out ids of,
 * read from the position of the id sequence (0 for a database never
 * configured).
 */
Datum
awa_shard(PG_FUNCTION_ARGS)
{
	char	   *seq = qualified_name(jobs_id_sequence());
	bool		isnull;
	int64		last;

	SPI_connect();
	last = spi_int64(psprintf("SELECT last_value FROM %s", seq), &isnull);
	SPI_finish();
	PG_RETURN_INT32((int32) (last >> AWA_SHARD_BITS));
}

/*
 * awa_shard_configure(shard integer) RETURNS bigint: make this database
 * shard `shard` of a fleet: from now on it hands out job ids of that shard
 * only.  Returns the next id it will hand out: at least shard * 2^48, above
 * every existing job, and above every id the sequence handed out in this
 * shard's range (so configuring shard 0 on an existing database changes no
 * id and never reuses one).
 * Running it again with the same shard changes nothing.
 *
 * Waits for inserts in progress and blocks new ones until the caller's
 * transaction ends (SHARE ROW EXCLUSIVE locks on the id sequence, then on
 * awa.jobs: on the ring engine the relations its view reads).
 *
 * Errors: 22004 shard NULL; 25006 on a hot standby or in a read-only
 * transaction; 22003 shard outside 0 .. 32767; 55000 when
 * awa.jobs holds jobs whose ids belong to another shard (a database with
 * jobs can only become the shard its ids already name: 0 for one that was
 * alone before).
 */
Datum
awa_shard_configure(PG_FUNCTION_ARGS)
{
	int32		shard;
	int64		lo,
				hi,
				next;
	int64		min_id,
				max_id,
				last;
	bool		no_jobs,
				isnull,
				called;
	Oid			seqid;
	char	   *seq;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("shard must not be NULL")));
	shard = PG_GETARG_INT32(0);
	awa_check_writable("awa_shard_configure");
	if (shard < 0 || shard > AWA_SHARD_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("shard %d is out of range", shard),
				 errdetail("Shards are numbered 0 to %d.", AWA_SHARD_MAX)));

	lo = (int64) shard << AWA_SHARD_BITS;
	hi = lo + ((INT64CONST(1) << AWA_SHARD_BITS) - 1);
	if (lo == 0)
		lo = 1;
	seqid = jobs_id_sequence();
	seq = qualified_name(seqid);

	/*
	 * No insert may take an id between reading the bounds and moving the
	 * sequence.  The sequence first: nextval holds ROW EXCLUSIVE on it to the
	 * end of its transaction, so this waits for every transaction that took an
	 * id, whatever it has written yet, and holds back new ones.  An insert may
	 * take its id before it locks the relation it writes (the ring's unique
	 * jobs take it with their key in awa.unique_keys, then write awa.ready or
	 * awa.scheduled): had the relations been locked first, such an insert and
	 * this call's ALTER SEQUENCE (which takes the same lock, last) waited for
	 * each other (deadlock detected; isolation spec shard_configure_insert).
	 * Then the relations of awa.jobs (on the ring the view locks the ring's
	 * relations), for ids written without the sequence.
	 */
	LockRelationOid(seqid, ShareRowExclusiveLock);
	SPI_connect();
	if (SPI_execute("LOCK TABLE awa.jobs IN SHARE ROW EXCLUSIVE MODE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "awa: could not lock awa.jobs");
	min_id = spi_int64("SELECT min(id) FROM awa.jobs", &no_jobs);
	max_id = spi_int64("SELECT max(id) FROM awa.jobs", &isnull);
	if (!no_jobs && (min_id < lo || max_id > hi))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("awa.jobs holds jobs whose ids do not belong to shard %d", shard),
				 errdetail("Job ids run from %lld to %lld; shard %d owns ids %lld to %lld.",
						   (long long) min_id, (long long) max_id, shard,
						   (long long) lo, (long long) hi),
				 errhint("Configure a database that holds jobs as the shard its ids name (awa_shard_of), or empty awa.jobs first.")));

	/* the next id: past every job and past the sequence, if it is inside the range */
	next = lo;
	if (!no_jobs && max_id >= next)
		next = max_id + 1;
	if (SPI_execute(psprintf("SELECT last_value, is_called FROM %s", seq), false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "awa: could not read %s", seq);
	last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	called = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (last >= lo && last <= hi)
	{
		int64		seq_next = called ? last + 1 : last;

		if (seq_next > next)
			next = seq_next;
	}
	if (next > hi)
		ereport(ERROR,
				(errcode(ERRCODE_SEQUENCE_GENERATOR_LIMIT_EXCEEDED),
				 errmsg("shard %d has no job ids left", shard)));

	if (SPI_execute(psprintf("ALTER SEQUENCE %s INCREMENT BY 1 MINVALUE " INT64_FORMAT
							 " MAXVALUE " INT64_FORMAT " START WITH " INT64_FORMAT
							 " NO CYCLE RESTART WITH " INT64_FORMAT,
							 seq, lo, hi, lo, next), false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "awa: could not alter %s", seq);
	SPI_finish();
	PG_RETURN_INT64(next);
}
