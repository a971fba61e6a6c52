-- Names that are only table functions (not also built-in functions): a tenant-scoped query may call
-- few of them (storage/guard.py: ALLOWED_TABLE_FUNCTIONS). Fixed by the engine's build: read once per
-- engine (storage/guard.py); a user-defined function of the same name is taken out when it exists.
SELECT name FROM system.table_functions WHERE name NOT IN (SELECT name FROM system.functions WHERE origin = 'System')
