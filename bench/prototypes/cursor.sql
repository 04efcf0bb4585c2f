-- Prototype "cursor": today's UPDATE-in-place table (the shape of awa.jobs) plus a shared claim cursor per
-- (queue, priority): the claim's index range starts at the cursor instead of at the head of the claim index,
-- whose first entries are the dead versions of every job claimed since the oldest snapshot.
--
-- The engine would keep the cursor in shared memory (run_at of the lowest job it may still have to hand out);
-- here a sequence stands in for it (non-transactional, updated in place, leaves no dead tuple), holding run_at
-- in microseconds since 1970.  What keeps it correct in the engine (not needed by this drain, which has no
-- late commits and no rollbacks) is in docs/storage.md: the cursor is only ever raised to the smallest key a
-- committed claim took, with a generation check, and lowered at commit (xact callback) by every transaction
-- that made a job claimable below it, and at abort by every claim that rolls back.
DROP SCHEMA IF EXISTS p_cur CASCADE;
CREATE SCHEMA p_cur;
CREATE TABLE p_cur.jobs (LIKE awa.jobs INCLUDING ALL) WITH (fillfactor = 90);
CREATE SEQUENCE p_cur.cursor_vac MINVALUE 0 START 0;
