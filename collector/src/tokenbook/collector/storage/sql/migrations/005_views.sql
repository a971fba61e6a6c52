-- Exact, deduplicated views for readers (CLI, Grafana, SQL users): each reads with FINAL.
CREATE VIEW IF NOT EXISTS {{db}}.v_calls {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
;
CREATE VIEW IF NOT EXISTS {{db}}.v_context_steps {{on_cluster}} AS
SELECT * FROM {{db}}.context_steps FINAL
;
CREATE VIEW IF NOT EXISTS {{db}}.v_context_costs {{on_cluster}} AS
SELECT * FROM {{db}}.context_costs FINAL
;
CREATE VIEW IF NOT EXISTS {{db}}.v_cost_hourly {{on_cluster}} AS
SELECT * FROM {{db}}.cost_hourly FINAL
;
CREATE VIEW IF NOT EXISTS {{db}}.v_cost_daily {{on_cluster}} AS
SELECT
    toDate(hour) AS day,
    tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency,
    sum(calls) AS calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(errors) AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(input_cost) AS input_cost,
    sum(output_cost) AS output_cost,
    sum(cache_read_cost) AS cache_read_cost,
    sum(cache_write_cost) AS cache_write_cost,
    sum(total_cost) AS total_cost
FROM {{db}}.cost_hourly FINAL
GROUP BY day, tenant_id, project_id, team_id, feature, service_name, provider, model, operation, currency
