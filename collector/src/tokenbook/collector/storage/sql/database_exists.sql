-- 1 when the database exists.
SELECT count() FROM system.databases WHERE name = {db:String}
