-- What `tokenbook export focus` exported, so that a later export corrects it instead of silently
-- restating it: one row per export run (its days [since, until) and tenant scope, '' = every tenant;
-- running the same export again replaces it: read with FINAL), and the FOCUS rows it wrote (usage and
-- corrections), tagged with the run's version. A later export compares each earlier day's current
-- figures with what was exported for it and writes the difference as correction rows.
CREATE TABLE IF NOT EXISTS {{table:focus_export_runs}} {{on_cluster}}
(
    run_key String,
    since Date,
    until Date,
    tenant_id LowCardinality(String),
    exported_at DateTime64(6, 'UTC'),
    version UInt64
)
ENGINE = {{engine:ReplacingMergeTree(version)}}
ORDER BY run_key
;
{{distributed:focus_export_runs:cityHash64(run_key)}}
;
CREATE TABLE IF NOT EXISTS {{table:focus_export_rows}} {{on_cluster}}
(
    run_key String,
    run_version UInt64,
    day Date,
    tenant_id LowCardinality(String),
    project_id LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    currency LowCardinality(String),
    price_source LowCardinality(String),
    token_type LowCardinality(String),
    list_unit_price Nullable(Decimal(38, 12)),
    catalog_version LowCardinality(String),
    book String,
    contracted_unit_price Nullable(Decimal(38, 12)),
    correction UInt8,
    list_cost Decimal(38, 12),
    billed_cost Decimal(38, 12),
    quantity Int64,
    calls Int64
)
ENGINE = {{engine:MergeTree()}}
ORDER BY (run_key, run_version, day, tenant_id)
;
{{distributed:focus_export_rows:cityHash64(run_key)}}
