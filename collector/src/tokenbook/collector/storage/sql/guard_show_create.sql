-- SHOW CREATE <table> of the tokenbook database (collector/sqlguard.py).
SELECT create_table_query AS statement
FROM system.tables
WHERE database = {tokenbook_guard_database:String} AND name = {tokenbook_guard_table:String}
