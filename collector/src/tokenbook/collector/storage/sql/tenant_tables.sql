-- Tables and views of the tokenbook database, and whether each has a tenant_id column: a tenant-scoped
-- token reads every one of them through additional_table_filters (storage/tenancy.py: tenant_filters).
SELECT t.name, countIf(c.name = 'tenant_id') > 0 AS has_tenant
FROM system.tables AS t
LEFT JOIN system.columns AS c ON c.database = t.database AND c.table = t.name
WHERE t.database = {db:String}
GROUP BY t.name
