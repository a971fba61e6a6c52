-- SHOW CREATE <table> of the tokenbook database (storage/guard.py).
SELECT create_table_query AS statement
FROM system.tables
WHERE database = {tokenbook_guard_database:String} AND name = {tokenbook_guard_table:String}
