-- The hourly roll-up's recompute (refresh_cost_hourly.sql) reads the calls of its hours by time.
-- Through `llm_calls FINAL` it read every granule of the touched tenants in the month partition (the
-- ledger is sorted by tenant and context, not time), so refreshing one hour of a busy tenant cost
-- that tenant's month. The time-ordered projection (migration 130) lacked the columns the roll-up
-- groups and sums; this one, `p_calls_by_time`, has them too, and replaces it (a projection's
-- columns cannot be changed; a new name keeps the old one's parts from being read as the new one's
-- while they are rebuilt). Like p_by_time, it keeps every version of a row (readers keep the newest)
-- and is rebuilt from the merged rows when parts merge ('rebuild', set by migration 130).
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    ADD PROJECTION IF NOT EXISTS p_calls_by_time
    (
        SELECT
            timestamp, tenant_id, context_id, trace_id, span_id, parent_span_id, ancestors, version,
            ingested_at, model, project_id, team_id, feature, currency, price_status, quote_status,
            billing_rule, billed_by, kind, scope_name, scope_version, service_instance, response_id,
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, duration_ms, total_cost,
            billed_cost, service_name, provider, operation, status, reasoning_tokens, input_cost,
            output_cost, cache_read_cost, cache_write_cost
        ORDER BY timestamp
    )
;
ALTER TABLE {{table:llm_calls}} {{on_cluster}} MATERIALIZE PROJECTION p_calls_by_time
;
ALTER TABLE {{table:llm_calls}} {{on_cluster}} DROP PROJECTION IF EXISTS p_by_time
