SELECT id, run_lease FROM awa_claim('@QUEUE@') \gset
SELECT awa_complete(:id, :run_lease);
