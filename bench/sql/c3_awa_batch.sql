SELECT array_agg(id) AS ids, array_agg(run_lease) AS leases FROM awa_claim('@QUEUE@', batch => @BATCH@) \gset
SELECT awa_complete_many(:ids, :leases);
