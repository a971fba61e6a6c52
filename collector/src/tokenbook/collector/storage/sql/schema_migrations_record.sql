-- Record one applied migration.
INSERT INTO {{db}}.schema_migrations (version, name, checksum, applied_at)
SELECT {version:UInt32}, {name:String}, {checksum:String}, now64(6)
