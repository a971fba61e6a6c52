-- Trace-ordered copies of what the billing decision pass looks up by trace: the traces' time span in
-- the ledger, and the parent links of the steps. Both tables are sorted by (tenant_id, context_id,
-- trace_id, span_id) and a trace can span contexts, so without them a lookup by trace alone reads the
-- month partitions (steps) or, through the time-ordered projection p_by_time, the whole day around
-- the touched calls (the ledger): a pass then costs what the day holds, not what it touched.
--
-- `p_by_trace` on the ledger keeps only each row's trace and start time: the pass reads the first and
-- last start of its traces there (decision_candidates.sql), then the calls of that span of time from
-- p_by_time. On the steps it keeps the columns of the parent links (decision_links.sql), with the
-- version columns, so the pass keeps the newest version of each step as FINAL does. Both keep every
-- version, and are rebuilt from the merged rows when parts merge ('rebuild'), as p_by_time is.
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    ADD PROJECTION IF NOT EXISTS p_by_trace (SELECT trace_id, timestamp ORDER BY trace_id)
;
ALTER TABLE {{table:llm_calls}} {{on_cluster}} MATERIALIZE PROJECTION p_by_trace
;
ALTER TABLE {{table:context_steps}} {{on_cluster}}
    MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'
;
ALTER TABLE {{table:context_steps}} {{on_cluster}}
    ADD PROJECTION IF NOT EXISTS p_by_trace
    (
        SELECT tenant_id, trace_id, span_id, parent_span_id, timestamp, version, ingested_at
        ORDER BY trace_id
    )
;
ALTER TABLE {{table:context_steps}} {{on_cluster}} MATERIALIZE PROJECTION p_by_trace
