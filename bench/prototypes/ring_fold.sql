-- one fold: exact counts at this statement's snapshot, stored with that snapshot (one statement, so the
-- snapshot that reads is the snapshot that is stored)
INSERT INTO p_ring.folds (fold_id, snap, queue, available, running, completed)
SELECT f.id, pg_current_snapshot(), s.* FROM (SELECT nextval('p_ring.fold_seq') AS id) f, p_ring.stats() s;
-- deltas every later fold's snapshot sees can go (DELETE: the dead rows are below every reader's xid range)
DELETE FROM p_ring.deltas WHERE xid < (SELECT pg_snapshot_xmin(snap) FROM p_ring.folds ORDER BY fold_id DESC LIMIT 1);
DELETE FROM p_ring.folds WHERE fold_id < (SELECT max(fold_id) FROM p_ring.folds);
