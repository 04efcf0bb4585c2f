/* awa--0.1.0--0.2.0.sql — ALTER EXTENSION awa UPDATE TO '0.2.0'
 *
 * Adds per-queue concurrency limits: awa.queue_meta.max_running and
 * awa_set_queue_limit().  Existing rows keep their data; no queue gets a
 * limit.  The result must equal a fresh install of awa--0.2.0.sql
 * (test/integration/upgrade.sh compares pg_dump --schema-only of both). */

\echo Use "ALTER EXTENSION awa UPDATE TO '0.2.0'" to load this file. \quit

-- Adding a nullable column without a default rewrites nothing: instant even
-- with millions of rows in the table.
ALTER TABLE awa.queue_meta ADD COLUMN max_running integer
	CONSTRAINT queue_meta_max_running_range CHECK (max_running BETWEEN 1 AND 1000000);

COMMENT ON TABLE awa.queue_meta IS 'per-queue state (paused or not, concurrency limit)';
COMMENT ON COLUMN awa.queue_meta.max_running
	IS 'at most this many jobs of the queue running at once, across all workers (NULL: no limit); set with awa_set_queue_limit';

CREATE FUNCTION awa_set_queue_limit(queue text, max_running integer)
RETURNS awa.queue_meta
AS 'MODULE_PATHNAME', 'awa_set_queue_limit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION awa_set_queue_limit(text, integer)
	IS 'let awa_claim run at most max_running jobs of the queue at once, across all workers (NULL: no limit); returns the queue''s settings';

-- Privileges of the new function, as the install script gives every awa_*
-- function: runs as the owner with a pinned search_path; admins only.
ALTER FUNCTION awa_set_queue_limit(text, integer)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION awa_set_queue_limit(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awa_set_queue_limit(text, integer) TO awa_admin;
