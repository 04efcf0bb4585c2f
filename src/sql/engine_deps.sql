-- Results, dependencies and groups on the ring engine (docs/storage.md, "Step 5: results and dependents on the
-- ring").  Appended to the install script and to the upgrade script from 0.2.0, after src/sql/engine.sql.
-- awa_parent_results and awa_dependents are SQL functions over awa.job_dependencies and the table; in a database
-- created or upgraded while awa.install_engine was 'ring' they are declared again over the ring's own
-- (awa.ring_parent_results, awa.ring_dependents): same arguments and columns, comment and grants kept (CREATE OR
-- REPLACE), running as the owner as privileges.sql made them.  The C functions dispatch themselves (engine_deps.c).
DO $engine_deps$
BEGIN
	-- what engine.sql chose: awa.jobs is the ring's view, or the table
	IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'awa.jobs'::pg_catalog.regclass) <> 'v' THEN
		RETURN;
	END IF;
	CREATE OR REPLACE FUNCTION awa_parent_results(job_id bigint)
	RETURNS TABLE (
		parent_id		bigint,
		kind			text,
		state			awa.job_state,
		satisfied		boolean,
		result			jsonb,
		finalized_at	timestamptz)
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
		SELECT r.parent_id, r.kind, r.state, r.satisfied, r.result, r.finalized_at
		FROM awa.ring_parent_results(awa_parent_results.job_id) r;
	END;
	CREATE OR REPLACE FUNCTION awa_dependents(job_id bigint)
	RETURNS TABLE (
		dependent_id	bigint,
		kind			text,
		state			awa.job_state,
		satisfied		boolean,
		waiting_for		integer,
		on_parent_failure	text)
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	BEGIN ATOMIC
		SELECT r.dependent_id, r.kind, r.state, r.satisfied, r.waiting_for, r.on_parent_failure
		FROM awa.ring_dependents(awa_dependents.job_id) r;
	END;
END
$engine_deps$;
