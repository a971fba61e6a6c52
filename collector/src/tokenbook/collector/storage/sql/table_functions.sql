-- Names that are only table functions (not also ordinary functions): a tenant-scoped query may call
-- few of them (collector/auth.py: TENANT_TABLE_FUNCTIONS).
SELECT name FROM system.table_functions WHERE name NOT IN (SELECT name FROM system.functions)
