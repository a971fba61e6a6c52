-- SHOW TABLES [LIKE 'p'] of the tokenbook database (storage/guard.py).
SELECT name
FROM system.tables
WHERE database = {tokenbook_guard_database:String} AND name LIKE {tokenbook_guard_like:String}
ORDER BY name
