-- enqueue one job + its counter delta, one statement (slot 0 stands for the open slot)
WITH j AS (INSERT INTO p_ring.ready (slot, kind, queue, args) VALUES (0, 'k', 'enq', '{"n":1}') RETURNING queue)
INSERT INTO p_ring.deltas (queue, available) SELECT queue, 1 FROM j;
