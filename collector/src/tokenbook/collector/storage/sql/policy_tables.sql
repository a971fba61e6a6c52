-- The tables (not views) of the tokenbook database, and whether each has a tenant_id column: each gets
-- a row policy per tenant (storage/row_policies.py). Views read their tables under the caller's
-- policies.
SELECT t.name, countIf(c.name = 'tenant_id') > 0 AS has_tenant
FROM system.tables AS t
LEFT JOIN system.columns AS c ON c.database = t.database AND c.table = t.name
WHERE t.database = {db:String} AND t.engine NOT IN ('View', 'MaterializedView', 'LiveView', 'WindowView')
GROUP BY t.name
ORDER BY t.name
