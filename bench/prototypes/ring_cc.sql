-- claim 10 from the cursor on (receipts), + complete (done rows); one counter delta per statement
SELECT ids, leases FROM p_ring.claim('vac', 10) \gset
SELECT p_ring.complete(:ids::bigint[], :leases::bigint[]);
