INSERT INTO p_ring.ready (slot, kind, queue, args) VALUES (0, 'k', 'enq', '{"n":1}');
