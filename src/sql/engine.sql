-- The engine a new database keeps its jobs in (docs/storage.md, "Step 5: how the switch lands").  Appended to the
-- install script only, after privileges.sql.  By default awa.jobs is the table above.  While the superuser setting
-- awa.install_engine is 'ring' (internal: the storage engine in development; only awa's own tests set it),
-- CREATE EXTENSION puts the jobs in the ring instead: the table is renamed awa.jobs_table (kept, empty, for what
-- was declared with its row type) and awa.jobs becomes a view of the ring in the same shape, readable by the
-- same roles; the awa_* functions see the view and work on the ring (those not on it yet raise 0A000).
DO $engine$
DECLARE
	g record;
BEGIN
	IF pg_catalog.current_setting('awa.install_engine', true) IS DISTINCT FROM 'ring' THEN
		RETURN;
	END IF;
	ALTER TABLE awa.jobs RENAME TO jobs_table;
	CREATE VIEW awa.jobs AS SELECT * FROM awa.ring_jobs;
	COMMENT ON VIEW awa.jobs IS 'every job, in every state (the ring engine); change it through the awa_* functions';
	FOR g IN
		SELECT a.privilege_type, a.grantee::regrole AS grantee
		FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
		WHERE c.oid = 'awa.jobs_table'::regclass AND a.grantee <> c.relowner AND a.grantee <> 0
			AND a.privilege_type = 'SELECT'
	LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON awa.jobs TO %s', g.grantee);
	END LOOP;
END
$engine$;
