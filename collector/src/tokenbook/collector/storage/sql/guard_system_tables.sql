-- What `system.tables` means in a user query (storage/guard.py): the tables and views of the
-- tokenbook database only, without sizes, row counts or paths (they would count every tenant's rows).
SELECT database, name, engine, create_table_query, engine_full, as_select, partition_key, sorting_key,
    primary_key, sampling_key, comment
FROM system.tables
WHERE database = {tokenbook_guard_database:String}
