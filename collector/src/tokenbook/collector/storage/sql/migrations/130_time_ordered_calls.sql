-- A time-ordered copy of the ledger's narrow columns, for the reads that select calls by time rather
-- than by tenant and context: the partial hours at either end of `tokenbook report` (report_rollup.sql)
-- and the decision pass's candidates (decision_candidates.sql: a window of time around the touched
-- calls). The ledger is sorted by (tenant_id, context_id, trace_id, span_id) and partitioned by month,
-- so without it such a read scans whole month partitions, and costs what the ledger holds rather than
-- what the window holds.
--
-- A projection: the engine keeps it in every part, written with the part and merged with it; a query
-- reading only its columns without FINAL, filtered on timestamp, reads the window's rows from it.
-- It keeps every version of a row, as the ledger's parts do; the queries that read it keep the newest
-- version of each span themselves (LIMIT 1 BY after ORDER BY version DESC: every version of a span
-- has the same timestamp). ReplacingMergeTree drops superseded versions when it merges parts: 'rebuild'
-- rebuilds the merged part's projection from the merged rows, so it always holds exactly the part's.
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'
;
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    ADD PROJECTION IF NOT EXISTS p_by_time
    (
        SELECT
            timestamp, tenant_id, context_id, trace_id, span_id, parent_span_id, ancestors, version,
            ingested_at, model, project_id, team_id, feature, currency, price_status, quote_status,
            billing_rule, billed_by, kind, scope_name, scope_version, service_instance, response_id,
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, duration_ms, total_cost,
            billed_cost
        ORDER BY timestamp
    )
;
ALTER TABLE {{table:llm_calls}} {{on_cluster}} MATERIALIZE PROJECTION p_by_time
