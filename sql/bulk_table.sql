-- Bulk enqueue on the table engine (the rest: bulk.sql, on the default ring): a trigger of the user's on awa.jobs.
-- On the table engine (awa.install_engine = table): on the ring awa.jobs is a view, which takes no row trigger
-- after an insert.
SET awa.install_engine = 'table';
CREATE EXTENSION awa;
SET timezone = 'UTC';

-- with a trigger of the user's on awa.jobs, awa_insert and awa_insert_many take
-- the executor path (fastinsert.c steps aside), so the trigger sees every row
-- (it runs under awa's pinned search_path: schema-qualify, or SET search_path on it)
CREATE TABLE seen (kind text);
CREATE FUNCTION note_job() RETURNS trigger LANGUAGE plpgsql AS
	$$ BEGIN INSERT INTO public.seen VALUES (NEW.kind); RETURN NULL; END $$;
CREATE TRIGGER audit AFTER INSERT ON awa.jobs FOR EACH ROW EXECUTE FUNCTION note_job();
SELECT kind, state FROM awa_insert('audited-one');
SELECT kind, state FROM awa_insert_many('[{"kind": "audited-many"}, {"kind": "audited-later", "run_at": "2999-01-01"}]');
-- the executor path writes every field, the timeout too
SELECT kind, timeout FROM awa_insert_many('[{"kind": "audited-timeout", "timeout": "5 minutes"}]');
SELECT kind, count(*) FROM seen GROUP BY 1 ORDER BY 1;
DROP TRIGGER audit ON awa.jobs;
SELECT kind FROM awa_insert('unaudited');
SELECT count(*) FROM seen;
DROP TABLE seen;
DROP FUNCTION note_job();

DROP EXTENSION awa;
