-- `tokenbook export focus`: the rows earlier export runs (their latest version) wrote for days before
-- {before}, of one tenant or all, other than this run's.
SELECT x.*
FROM focus_export_rows AS x
INNER JOIN (SELECT run_key, version FROM focus_export_runs FINAL) AS r
    ON x.run_key = r.run_key AND x.run_version = r.version
WHERE x.day < {before:Date}
    AND x.run_key != {run_key:String}
    AND ({tenant:String} = '' OR x.tenant_id = {tenant:String})
