-- Context-window saturation: each model call's input tokens over its model's context window (from the
-- genai-prices catalog). Both NULL when the window is unknown, never 0.
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS context_window Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS context_saturation Nullable(Float64)
;
ALTER TABLE {{db}}.llm_calls {{on_cluster}}
    ADD COLUMN IF NOT EXISTS context_window Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS context_saturation Nullable(Float64)
;
-- The call views list the table's columns as of their creation: made again with the new ones.
CREATE OR REPLACE VIEW {{db}}.v_call_candidates {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
;
CREATE OR REPLACE VIEW {{db}}.v_calls {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
WHERE price_status NOT IN ('duplicate_layer', 'wrapper')
;
-- Per context: the highest saturation of any of its calls, and the call that reached it.
CREATE OR REPLACE VIEW {{db}}.v_context_saturation {{on_cluster}} AS
SELECT
    tenant_id,
    context_id,
    max(context_saturation) AS max_saturation,
    argMax(model, coalesce(context_saturation, -1)) AS max_saturation_model,
    argMax(span_id, coalesce(context_saturation, -1)) AS max_saturation_span_id,
    max(input_tokens) AS max_input_tokens,
    countIf(context_saturation IS NOT NULL) AS measured_calls,
    count() AS calls
FROM {{db}}.v_calls
WHERE kind IN ('model', '')
GROUP BY tenant_id, context_id
;
-- Calls at or above a saturation threshold (a query parameter, e.g. 0.8):
-- SELECT * FROM v_saturated_calls(threshold = 0.8)
CREATE OR REPLACE VIEW {{db}}.v_saturated_calls {{on_cluster}} AS
SELECT timestamp, tenant_id, context_id, trace_id, span_id, provider, model, input_tokens,
       context_window, context_saturation
FROM {{db}}.v_calls
WHERE context_saturation >= {threshold:Float64}
;
