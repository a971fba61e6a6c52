-- `tokenbook export focus`: the recorded export runs (the latest of each) in the same billing currency
-- ('' = the ledger's), other than this one.
SELECT run_key, since, until, tenant_id, exported_at, version, currency
FROM focus_export_runs FINAL
WHERE run_key != {run_key:String}
    AND currency = {currency:String}
ORDER BY exported_at
