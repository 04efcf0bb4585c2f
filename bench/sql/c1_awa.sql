SELECT awa_insert('k', '{"n":1}');
