INSERT INTO p_base.jobs (kind, queue, args) VALUES ('k', 'enq', '{"n":1}');
