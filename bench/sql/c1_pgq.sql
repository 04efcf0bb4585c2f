SELECT pgq.insert_event('bench', 'k', '{"n":1}');
