-- Bootstrap for `tokenbook migrate`: the database and the table recording applied migrations.
-- One table for the whole cluster (the replication path has no {shard}).
CREATE DATABASE IF NOT EXISTS {{db}} {{on_cluster}}
;
CREATE TABLE IF NOT EXISTS {{db}}.schema_migrations {{on_cluster}}
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(6, 'UTC')
)
ENGINE = {{global_engine:ReplacingMergeTree(applied_at)}}
ORDER BY version
