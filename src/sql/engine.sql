-- The engine a database keeps its jobs in (docs/storage.md, "Step 5: how the switch lands", "Step 5: moving a
-- database's jobs into the ring" and "Step 5: the ring becomes the default").  Appended to the install script and
-- to the upgrade script from 0.2.0, after privileges.sql: the same text in both, so that an upgraded database looks
-- as a fresh one.  The superuser setting awa.install_engine chooses: 'ring' (the default) or 'table' (the legacy
-- engine: awa.jobs stays the table above).  On the ring, CREATE EXTENSION and ALTER EXTENSION awa UPDATE put the
-- jobs in the ring: the jobs the table holds (on an upgrade; none on a fresh install) move into the ring's
-- relations (awa.ring_adopt_jobs(), src/ring_adopt.c), the table is renamed awa.jobs_table (kept, empty) and
-- awa.jobs becomes a view of the ring in the same shape, with the table's column defaults, readable by the same
-- roles, INSERT and COPY into it enqueueing into the ring (the table's trigger function, INSTEAD OF), UPDATE of it
-- refused (0A000) and DELETE deleting from the ring (INSTEAD OF triggers of their own); the routines declared
-- with the table's row type are declared again with the view's (same comment, same grants).  The awa_*
-- functions see the view and work on the ring.  engine_deps.sql and engine_batch.sql follow what this chose
-- (whether awa.jobs is a view).
--
-- The library is loaded first, so that the setting is defined (with its default) even in a session that has not
-- loaded it yet (a server without awa in shared_preload_libraries, check_function_bodies off as in a restore):
-- without it current_setting would be NULL, or a placeholder's unchecked text.
LOAD 'MODULE_PATHNAME';
DO $engine$
DECLARE
	g record;
	f record;
	def text;
BEGIN
	IF pg_catalog.current_setting('awa.install_engine', true) IS DISTINCT FROM 'ring' THEN
		RETURN;
	END IF;
	PERFORM awa.ring_adopt_jobs();
	ALTER TABLE awa.jobs RENAME TO jobs_table;
	CREATE VIEW awa.jobs AS SELECT * FROM awa.ring_jobs;
	COMMENT ON VIEW awa.jobs IS 'every job, in every state (the ring engine); change it through the awa_* functions';
	FOR g IN
		SELECT a.attname, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS expr
		FROM pg_catalog.pg_attrdef d
		JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
		WHERE d.adrelid = 'awa.jobs_table'::regclass
	LOOP
		EXECUTE pg_catalog.format('ALTER VIEW awa.jobs ALTER COLUMN %I SET DEFAULT %s', g.attname, g.expr);
	END LOOP;
	FOR g IN
		SELECT a.grantee::regrole AS grantee
		FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
		WHERE c.oid = 'awa.jobs_table'::regclass AND a.grantee <> c.relowner AND a.grantee <> 0
			AND a.privilege_type = 'SELECT'
	LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON awa.jobs TO %s', g.grantee);
	END LOOP;
	-- INSERT and COPY into awa.jobs: the same trigger function, enqueueing into the ring instead (copy.c); the
	-- columns a role may insert, as on the table
	CREATE TRIGGER jobs_before_insert INSTEAD OF INSERT ON awa.jobs
		FOR EACH ROW EXECUTE FUNCTION awa.jobs_before_insert();
	-- UPDATE of awa.jobs: 0A000 naming the awa_* functions that change jobs; DELETE: the job leaves the ring
	-- (engine_admin.c, ring_admin.c), cancelled first if not finished; who may: as on the table (its owner)
	CREATE FUNCTION awa.jobs_instead_of_update() RETURNS trigger
		AS 'MODULE_PATHNAME', 'awa_jobs_instead_of_update' LANGUAGE C VOLATILE PARALLEL UNSAFE;
	COMMENT ON FUNCTION awa.jobs_instead_of_update()
		IS 'trigger: INSTEAD OF UPDATE on the view awa.jobs (ring engine): 0A000, jobs change through the awa_* functions';
	CREATE FUNCTION awa.jobs_instead_of_delete() RETURNS trigger
		AS 'MODULE_PATHNAME', 'awa_jobs_instead_of_delete' LANGUAGE C VOLATILE PARALLEL UNSAFE;
	COMMENT ON FUNCTION awa.jobs_instead_of_delete()
		IS 'trigger: INSTEAD OF DELETE on the view awa.jobs (ring engine): the job leaves the ring (cancelled first if not finished)';
	-- the row trigger notes the ids, the statement's AFTER trigger deletes them together (engine_admin.c)
	CREATE FUNCTION awa.jobs_delete_statement() RETURNS trigger
		AS 'MODULE_PATHNAME', 'awa_jobs_delete_statement' LANGUAGE C VOLATILE PARALLEL UNSAFE;
	COMMENT ON FUNCTION awa.jobs_delete_statement()
		IS 'trigger: BEFORE and AFTER DELETE FOR EACH STATEMENT on the view awa.jobs (ring engine): the jobs a DELETE names leave the ring together at its end';
	REVOKE ALL ON FUNCTION awa.jobs_instead_of_update(), awa.jobs_instead_of_delete(), awa.jobs_delete_statement()
		FROM PUBLIC;
	CREATE TRIGGER jobs_instead_of_update INSTEAD OF UPDATE ON awa.jobs
		FOR EACH ROW EXECUTE FUNCTION awa.jobs_instead_of_update();
	CREATE TRIGGER jobs_instead_of_delete INSTEAD OF DELETE ON awa.jobs
		FOR EACH ROW EXECUTE FUNCTION awa.jobs_instead_of_delete();
	CREATE TRIGGER jobs_delete_begin BEFORE DELETE ON awa.jobs
		FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_delete_statement();
	CREATE TRIGGER jobs_delete_end AFTER DELETE ON awa.jobs
		FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_delete_statement();
	FOR g IN
		SELECT a.attname, x.grantee::regrole AS grantee, x.privilege_type
		FROM pg_catalog.pg_attribute a CROSS JOIN LATERAL pg_catalog.aclexplode(a.attacl) x
		WHERE a.attrelid = 'awa.jobs_table'::regclass AND a.attacl IS NOT NULL AND NOT a.attisdropped
			AND x.grantee <> 0
	LOOP
		EXECUTE pg_catalog.format('GRANT %s (%I) ON awa.jobs TO %s', g.privilege_type, g.attname, g.grantee);
	END LOOP;
	-- awa_insert, awa_claim, awa_claim_wait, ...: RETURNS awa.jobs, SETOF awa.jobs, INOUT awa.jobs[]
	FOR f IN
		SELECT p.oid, p.oid::pg_catalog.regprocedure::text AS sig, p.proacl, p.proowner,
			pg_catalog.obj_description(p.oid, 'pg_proc') AS note
		FROM pg_catalog.pg_proc p, pg_catalog.pg_type t
		WHERE t.oid = 'awa.jobs_table'::regtype
			AND (p.prorettype IN (t.oid, t.typarray)
				OR t.oid = ANY (coalesce(p.proallargtypes, p.proargtypes::oid[]))
				OR t.typarray = ANY (coalesce(p.proallargtypes, p.proargtypes::oid[])))
		ORDER BY p.oid
	LOOP
		def := pg_catalog.replace(pg_catalog.pg_get_functiondef(f.oid), 'awa.jobs_table', 'awa.jobs');
		EXECUTE pg_catalog.format('DROP ROUTINE %s', f.sig);
		EXECUTE def;
		EXECUTE pg_catalog.format('COMMENT ON ROUTINE %s IS %L',
			pg_catalog.replace(f.sig, 'awa.jobs_table', 'awa.jobs'), f.note);
		EXECUTE pg_catalog.format('REVOKE ALL ON ROUTINE %s FROM PUBLIC',
			pg_catalog.replace(f.sig, 'awa.jobs_table', 'awa.jobs'));
		FOR g IN
			SELECT a.grantee FROM pg_catalog.aclexplode(f.proacl) a WHERE a.grantee <> f.proowner
		LOOP
			EXECUTE pg_catalog.format('GRANT EXECUTE ON ROUTINE %s TO %s',
				pg_catalog.replace(f.sig, 'awa.jobs_table', 'awa.jobs'),
				CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END);
		END LOOP;
	END LOOP;
	-- pg_dump holds the ring's rows (docs/storage.md, "Step 5: dump and restore of the ring"): its relations (of a
	-- partitioned one, each partition: pg_dump copies partitions one by one) are the extension's configuration.  Only
	-- on the ring: on the table engine they stay empty, and pg_dump --table='awa.*' of a database whose partitions are
	-- the extension's configuration crashes (pg_dump 15.20: a partition whose parent it does not dump).
	FOR g IN
		SELECT r FROM pg_catalog.unnest(ARRAY[
			'ready_0', 'ready_1', 'ready_2', 'ready_3', 'claims_0', 'claims_1', 'claims_2', 'claims_3',
			'done_0', 'done_1', 'done_2', 'done_3', 'beats_0', 'beats_1', 'beats_2', 'beats_3',
			'callbacks_0', 'callbacks_1', 'callbacks_2', 'callbacks_3', 'ring_slots', 'scheduled',
			'unique_keys', 'ring_history', 'ring_dependencies', 'ring_dependents', 'ring_group_jobs',
			'ring_group_callbacks', 'ring_key_running', 'ring_key_live']) r
		-- members only: test/integration/upgrade.sh runs this file outside an extension script, detached
		WHERE EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass
			AND d.objid = ('awa.' || r)::regclass AND d.deptype = 'e')
	LOOP
		PERFORM pg_catalog.pg_extension_config_dump(('awa.' || g.r)::regclass, '');
	END LOOP;
END
$engine$;
