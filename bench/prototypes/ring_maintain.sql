-- one maintenance round of the ring: TRUNCATE every slot whose attempts are all finished (each ready row has
-- its done row).  The engine does this only for sealed slots (no enqueue goes there any more), once the
-- slot's history is past retention or copied out, and only while no snapshot older than the slot's last
-- write exists (TRUNCATE is not MVCC-safe); here the drain has just ended and nothing else runs.
DO $$
DECLARE
	s int;
BEGIN
	FOR s IN 0..3 LOOP
		IF EXISTS (SELECT 1 FROM p_ring.ready r WHERE r.slot = s)
		   AND NOT EXISTS (SELECT 1 FROM p_ring.ready r WHERE r.slot = s
		                    AND NOT EXISTS (SELECT 1 FROM p_ring.done d
		                                     WHERE d.job_id = r.id AND d.run_lease = r.run_lease + 1 AND d.slot = s)) THEN
			EXECUTE format('TRUNCATE p_ring.ready_%s, p_ring.claims_%s, p_ring.done_%s', s, s, s);
		END IF;
	END LOOP;
END $$;
