-- What `system.columns` means in a user query (storage/guard.py): columns of the tokenbook
-- database only, without on-disk sizes.
SELECT database, table, name, type, position, default_kind, default_expression, comment,
    is_in_partition_key, is_in_sorting_key, is_in_primary_key, is_in_sampling_key, compression_codec
FROM system.columns
WHERE database = {tokenbook_guard_database:String}
