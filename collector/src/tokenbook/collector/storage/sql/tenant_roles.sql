-- `tokenbook tenants`: the tenant roles of the store's database on the server, those whose name
-- starts with the database's role prefix (storage/row_policies.py: role_prefix).
SELECT name FROM system.roles WHERE startsWith(name, {prefix:String}) ORDER BY name
