-- `tokenbook export focus`: the recorded export runs (the latest of each), other than this one.
SELECT run_key, since, until, tenant_id, exported_at, version
FROM focus_export_runs FINAL
WHERE run_key != {run_key:String}
ORDER BY exported_at
