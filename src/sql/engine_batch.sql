-- One batch of the counters per statement that inserts into the view awa.jobs (docs/storage.md, "Step 5: one delta
-- row per statement on the ring").  Appended to the install script and the upgrade script into this version, after
-- src/sql/engine_deps.sql.  In a
-- database created while awa.install_engine was 'ring', the INSTEAD OF INSERT trigger enqueues each row into the
-- ring by itself, so the ring's counting triggers would write one delta row of awa.counter_deltas and
-- awa.history_deltas per job; these statement triggers (the same trigger function, copy.c) make the rows of one
-- INSERT or COPY one batch, written once per key at the statement's end (batch.c; counters.c, "Batches").
DO $engine_batch$
BEGIN
	-- what engine.sql chose: awa.jobs is the ring's view, or the table
	IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'awa.jobs'::pg_catalog.regclass) <> 'v' THEN
		RETURN;
	END IF;
	CREATE TRIGGER jobs_insert_batch_begin BEFORE INSERT ON awa.jobs
		FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_before_insert();
	CREATE TRIGGER jobs_insert_batch_end AFTER INSERT ON awa.jobs
		FOR EACH STATEMENT EXECUTE FUNCTION awa.jobs_before_insert();
END
$engine_batch$;
