
-- Privileges -------------------------------------------------------------------
--
-- Three roles, NOLOGIN, shared by every database of the cluster (roles are not
-- part of an extension, so DROP EXTENSION leaves them).  Grant one of them to an
-- application's login role:
--   awa_producer  enqueue (awa_insert, awa_insert_many, COPY into awa.jobs),
--                 look up and cancel jobs, queue stats, and resolve a parked
--                 job by its callback id (awa_complete_external and friends:
--                 the callback id is the capability, so a webhook handler
--                 needs only this role and the id)
--   awa_worker    claim and finish jobs, park them (awa_register_callback,
--                 awa_wait_external) and resolve callbacks too
--   awa_admin     everything, and reading the tables (dashboards)
-- PUBLIC gets nothing.  Every awa_* function runs as the extension's owner
-- (SECURITY DEFINER) with search_path pinned to pg_catalog, pg_temp, so that
-- neither the caller's privileges on awa's tables nor objects in the caller's
-- search_path matter; all SQL inside them is schema-qualified.
--
-- src/sql/privileges.sql is the one place for them: the build appends it to
-- the install script and to the upgrade script into the same version, both
-- made from src/sql/ (docs/releasing.md).  It gives privileges to the objects
-- that have none yet (a NULL ACL): those created by the script it ends, as
-- every object awa creates leaves with its ACL set.  Objects of an earlier
-- version keep theirs, with whatever an administrator granted or revoked
-- since: a GRANT or REVOKE run by ALTER EXTENSION UPDATE on them would make
-- PostgreSQL record the object's whole ACL, the administrator's changes
-- included, as the extension's initial privileges (pg_init_privs), and
-- pg_dump would then leave those changes out.  So a version that changes the
-- privileges of an object an earlier version created changes the lists below
-- (for fresh installs) and writes the same GRANT or REVOKE in its upgrade
-- source; test/integration/upgrade.sh proves that both end the same.

DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['awa_producer', 'awa_worker', 'awa_admin'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$$;

DO $$
DECLARE
	-- awa_admin may call every awa_* routine; these, the others too.
	producer_routines CONSTANT regprocedure[] := ARRAY[
		'awa_insert(text, jsonb, text, integer, integer, timestamptz, text[], jsonb, boolean, boolean, interval, awa.job_state[], interval, text, bigint[], text, text)',
		'awa_key_stats(text)',
		'awa_insert_many(jsonb)',
		'awa_get_job(bigint)',
		'awa_cancel(bigint)',
		'awa_cancel_by_unique_key(text, jsonb, text, interval, timestamptz)',
		'awa_queue_stats()',
		-- external completion: whoever knows a callback id may resolve its job
		'awa_complete_external(uuid, jsonb)',
		'awa_fail_external(uuid, text, jsonb)',
		'awa_retry_external(uuid, jsonb, interval)',
		'awa_heartbeat_callback(uuid, interval)',
		'awa_shard()',
		'awa_shard_of(bigint)',
		'awa_queue_history(text, timestamptz, interval, text, boolean)',
		-- Rate limits
		'awa_queue_limits()',
		-- groups
		'awa_group_stats(text)',
		'awa_group_callback(text)',
		'awa_group_on_finish(text, text, jsonb, text, integer, integer, jsonb)',
		-- dependencies
		'awa_parent_results(bigint)',
		'awa_dependents(bigint)'];
	worker_routines CONSTANT regprocedure[] := ARRAY[
		'awa_claim(text, text, integer, interval, interval)',
		'awa_claim_wait(text, text, integer, interval, interval, awa.jobs[])',
		-- Multi-queue claim
		'awa_claim(text[], text, integer, interval, interval)',
		'awa_claim_wait(text[], text, integer, interval, interval, awa.jobs[])',
		'awa_heartbeat(bigint[], bigint[])',
		'awa_progress(bigint, bigint, jsonb)',
		'awa_complete(bigint, bigint, jsonb)',
		'awa_complete_many(bigint[], bigint[], jsonb[])',
		'awa_register_callback(bigint, bigint, interval)',
		'awa_wait_external(bigint, bigint)',
		'awa_complete_external(uuid, jsonb)',
		'awa_fail_external(uuid, text, jsonb)',
		'awa_retry_external(uuid, jsonb, interval)',
		'awa_heartbeat_callback(uuid, interval)',
		'awa_fail(bigint, bigint, text, interval, boolean)',
		'awa_snooze(bigint, bigint, interval)',
		'awa_shard()',
		'awa_shard_of(bigint)',
		'awa_parent_results(bigint)',
		'awa_dependents(bigint)'];
	-- Functions of schema awa that run with the caller's privileges (the
	-- unique index, the COPY trigger and the counting triggers call them):
	-- every role may call them.
	shared_helpers CONSTANT regprocedure[] := ARRAY[
		'awa.unique_state_held(bit, awa.job_state)',
		'awa.jobs_before_insert()',
		'awa.jobs_count_changes()',
		'awa.jobs_dependencies_changes()'];
	-- The COPY path: only the columns a producer may set; state comes from run_at.
	producer_insert_columns CONSTANT name[] := ARRAY[
		'kind', 'args', 'queue', 'priority', 'max_attempts', 'run_at', 'tags', 'metadata', 'timeout', 'group_id',
		'concurrency_key'];
	-- The ring (docs/storage.md, step 4): internal relations no role is granted yet, and their partitions.
	internal_tables CONSTANT name[] := ARRAY['ring_slots', 'ready', 'claims', 'done', 'ring_jobs', 'beats',
		'ring_rescue_mark', 'scheduled', 'unique_keys', 'ring_live_jobs', 'ring_history',
		'callbacks', 'ring_dependencies', 'ring_dependents', 'ring_group_jobs', 'ring_group_callbacks',
		'ring_key_running', 'ring_key_live', 'ring_upkeep_mark'];
	awa_ext CONSTANT oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'awa');
	f regprocedure;
	kind "char";
	rel regclass;
	col name;
BEGIN
	-- The API: the awa_* routines of the extension.
	FOR f, kind IN
		SELECT p.oid::regprocedure, p.prokind
		FROM pg_catalog.pg_proc p
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass
			AND d.objid = p.oid AND d.refclassid = 'pg_catalog.pg_extension'::regclass
			AND d.refobjid = awa_ext AND d.deptype = 'e'
		WHERE p.proname LIKE 'awa\_%' AND p.prorettype <> 'pg_catalog.trigger'::regtype
			AND p.prokind IN ('f', 'p') AND p.proacl IS NULL
		ORDER BY p.oid
	LOOP
		-- A procedure that commits may not be SECURITY DEFINER: awa_maintain_for
		-- runs each round through awa_maintain(), which is, and awa_claim_wait
		-- each attempt through awa_claim().
		IF kind = 'f' THEN
			EXECUTE pg_catalog.format(
				'ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pg_temp', f);
		END IF;
		EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', f);
		EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO awa_admin', f);
		IF f = ANY (producer_routines) THEN
			EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO awa_producer', f);
		END IF;
		IF f = ANY (worker_routines) THEN
			EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO awa_worker', f);
		END IF;
	END LOOP;

	-- Schema awa: the extension's functions, tables and sequences in it.
	FOR f IN
		SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass
			AND d.objid = p.oid AND d.refclassid = 'pg_catalog.pg_extension'::regclass
			AND d.refobjid = awa_ext AND d.deptype = 'e'
		WHERE p.pronamespace = 'awa'::regnamespace AND p.proacl IS NULL
		ORDER BY p.oid
	LOOP
		EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', f);
		IF f = ANY (shared_helpers) THEN
			EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO awa_producer, awa_worker, awa_admin', f);
		END IF;
	END LOOP;
	IF (SELECT n.nspacl FROM pg_catalog.pg_namespace n WHERE n.nspname = 'awa') IS NULL THEN
		GRANT USAGE ON SCHEMA awa TO awa_producer, awa_worker, awa_admin;
	END IF;
	FOR rel, kind IN
		SELECT c.oid::regclass, c.relkind FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass
			AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_extension'::regclass
			AND d.refobjid = awa_ext AND d.deptype = 'e'
		WHERE c.relnamespace = 'awa'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
			AND c.relacl IS NULL
		ORDER BY c.oid
	LOOP
		IF kind = 'S' THEN
			EXECUTE pg_catalog.format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC', rel);
		ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_class t
					  WHERE t.relnamespace = 'awa'::regnamespace AND t.relname = ANY (internal_tables)
						AND (t.oid = rel OR t.oid IN (SELECT i.inhparent FROM pg_catalog.pg_inherits i
													  WHERE i.inhrelid = rel))) THEN
			EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC', rel);
		ELSE
			EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC', rel);
			EXECUTE pg_catalog.format('GRANT SELECT ON TABLE %s TO awa_admin', rel);
		END IF;
	END LOOP;
	-- A column without privileges is new, or one whose privileges an
	-- administrator revoked (a column's ACL then goes back to NULL): either
	-- way awa_producer gets it back.
	FOREACH col IN ARRAY producer_insert_columns LOOP
		IF (SELECT a.attacl FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = 'awa.jobs'::regclass AND a.attname = col AND NOT a.attisdropped) IS NULL THEN
			EXECUTE pg_catalog.format('GRANT INSERT (%I) ON awa.jobs TO awa_producer', col);
		END IF;
	END LOOP;
END
$$;
