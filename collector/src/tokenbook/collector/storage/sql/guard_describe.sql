-- DESCRIBE <table> of the tokenbook database, with DESCRIBE's columns (storage/guard.py).
SELECT name, type, default_kind AS default_type, default_expression, comment,
    compression_codec AS codec_expression, '' AS ttl_expression
FROM system.columns
WHERE database = {tokenbook_guard_database:String} AND table = {tokenbook_guard_table:String}
ORDER BY position
