-- Versions and checksums of the applied migrations.
SELECT version, checksum FROM {{db}}.schema_migrations FINAL ORDER BY version
