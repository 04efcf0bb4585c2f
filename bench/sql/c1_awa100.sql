SELECT count(awa_insert('k', '{"n":1}')) FROM generate_series(1, 100);
