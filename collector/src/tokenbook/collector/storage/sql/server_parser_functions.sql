-- How many of the parser functions the SQL guard needs the server has (storage/guard.py): all three
-- on ClickHouse 26.x, else the guard parses with the embedded engine.
SELECT count() FROM system.functions
WHERE name IN ('parseQueryToJSON', 'formatQueryFromJSON', 'tokenizeQuery')
