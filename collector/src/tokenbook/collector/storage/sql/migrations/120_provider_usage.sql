-- Reconciliation with the provider's figures (`tokenbook reconcile`): the usage and cost exports of
-- OpenAI (Usage API, Costs API, dashboard CSVs) and Anthropic (usage_report, cost_report, console
-- CSVs), imported one row per bucket x model x token type, and the drift between them and the ledger.
--
-- provider_usage keeps every import (append only). Each import has one `version`; for a tenant scope,
-- provider, kind (usage or cost) and day, the latest import is the provider's word (v_provider_usage):
-- importing a corrected export replaces what an earlier one said about the same days.
-- tenant_id is the scope the export covers: '' for the whole organization (compared with every
-- tenant's calls), or one tenant whose own project or workspace the export is (compared with its calls).
-- token_type: input (not cached), cache_read, cache_write, output (reasoning included), other (charges
-- that are not tokens, e.g. web search). tokens is NULL where the export reports only money (cost
-- exports), cost NULL where it reports only tokens (usage exports); requests is set on the input row of
-- each usage result. Money is exact: Decimal(38, 12), in `currency` (USD for both providers).
CREATE TABLE IF NOT EXISTS {{table:provider_usage}} {{on_cluster}}
(
    imported_at DateTime64(6, 'UTC'),
    version UInt64,
    tenant_id LowCardinality(String),
    provider LowCardinality(String),
    kind LowCardinality(String),
    source LowCardinality(String),
    file String,
    bucket_start DateTime64(0, 'UTC'),
    bucket_end DateTime64(0, 'UTC'),
    day Date,
    model String,
    token_type LowCardinality(String),
    line_item String,
    project String,
    api_key String,
    service_tier LowCardinality(String),
    tokens Nullable(Int64),
    requests Nullable(Int64),
    cost Nullable(Decimal(38, 12)),
    currency LowCardinality(String)
)
ENGINE = {{engine:MergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, provider, kind, day, version)
;
{{distributed:provider_usage:cityHash64(tenant_id)}}
;
-- The provider's current word: per tenant scope, provider, kind and day, the rows of the latest import.
CREATE VIEW IF NOT EXISTS {{db}}.v_provider_usage {{on_cluster}} AS
SELECT * EXCEPT (latest)
FROM
(
    SELECT *, max(version) OVER (PARTITION BY tenant_id, provider, kind, day) AS latest
    FROM {{db}}.provider_usage
)
WHERE version = latest
;
-- Drift per tenant scope x day x provider x model x token type, for the days an export covers: the
-- provider's tokens and cost against the ledger's billed calls (v_calls: priced and unpriced; a cache
-- hit made no model call). The ledger's provider is matched by name (openai, anthropic); models by a
-- key both sides share: lower case, spaces, dots and underscores as '-', a trailing date or '-latest'
-- dropped, Anthropic's 'claude-3-5-sonnet' as 'claude-sonnet-3-5' (so 'Claude Sonnet 4.5' in a console
-- CSV meets 'claude-sonnet-4-5-20250929' on a span). The ledger's cost counts in USD only: calls priced
-- in another currency count as unpriced. A row has tokens or money on one side at least. `cause`
-- names the visible cause of a drift ('' when the row matches); docs/guide/reconciliation.md explains
-- each.
CREATE VIEW IF NOT EXISTS {{db}}.v_reconcile_drift {{on_cluster}} AS
SELECT
    tenant_id,
    day,
    provider,
    model,
    token_type,
    provider_tokens,
    ledger_tokens,
    provider_tokens - ledger_tokens AS token_drift,
    provider_cost,
    ledger_cost,
    provider_cost - ledger_cost AS cost_drift,
    provider_requests,
    ledger_calls,
    ledger_unpriced_calls,
    ledger_reasoning_tokens,
    multiIf(
        (provider_tokens IS NOT NULL OR provider_cost IS NOT NULL)
            AND (token_drift IS NULL OR token_drift = 0) AND (provider_cost IS NULL OR cost_drift = 0), '',
        token_type = 'other', 'non_token_charge',
        model_ledger_calls = 0, 'untraced_model',
        NOT model_on_invoice OR (provider_tokens IS NULL AND provider_cost IS NULL), 'not_billed',
        token_type IN ('cache_read', 'cache_write') AND provider_tokens > 0 AND ledger_tokens = 0,
            'cache_not_reported',
        token_type = 'input' AND token_drift < 0 AND model_cache_unreported > 0, 'cache_not_reported',
        token_type = 'output' AND token_drift > 0 AND model_reasoning_tokens = 0 AND model_input_drift = 0,
            'missing_reasoning',
        ledger_unpriced_calls > 0 AND (cost_drift IS NULL OR cost_drift != 0), 'unpriced_calls',
        token_drift = 0 AND cost_drift != 0, 'price_difference',
        token_drift > 0 OR (token_drift IS NULL AND cost_drift > 0), 'untraced_calls',
        token_drift < 0 OR (token_drift IS NULL AND cost_drift < 0), 'not_billed',
        'unexplained'
    ) AS cause
FROM
(
    SELECT
        *,
        sum(ledger_calls) OVER model_day AS model_ledger_calls,
        max(provider_tokens IS NOT NULL OR provider_cost IS NOT NULL) OVER model_day AS model_on_invoice,
        sum(ledger_reasoning_tokens) OVER model_day AS model_reasoning_tokens,
        sumIf(provider_tokens - ledger_tokens, token_type = 'input') OVER model_day AS model_input_drift,
        countIf(token_type IN ('cache_read', 'cache_write') AND provider_tokens > 0 AND ledger_tokens = 0)
            OVER model_day AS model_cache_unreported
    FROM
    (
        SELECT
            scope AS tenant_id,
            day,
            provider,
            replaceRegexpOne(
                replaceRegexpOne(
                    replaceRegexpAll(lower(trimBoth(raw_model)), '[\\s._]+', '-'),
                    '-(\\d{8}|\\d{4}-\\d{2}-\\d{2}|latest)$', ''
                ),
                '^claude-(\\d+(?:-\\d+)?)-(opus|sonnet|haiku)', 'claude-\\2-\\1'
            ) AS model,
            token_type,
            sum(p_tokens) AS provider_tokens,
            sum(p_cost) AS provider_cost,
            sum(p_requests) AS provider_requests,
            sum(l_tokens) AS ledger_tokens,
            if(sum(l_rows) = 0, toDecimal128(0, 12), sum(l_cost)) AS ledger_cost,
            sum(l_calls) AS ledger_calls,
            sum(l_unpriced) AS ledger_unpriced_calls,
            sum(l_reasoning) AS ledger_reasoning_tokens
        FROM
        (
            SELECT
                tenant_id AS scope, day, provider, model AS raw_model, token_type,
                tokens AS p_tokens,
                toDecimal128(cost, 12) AS p_cost,
                requests AS p_requests,
                toInt64(0) AS l_tokens, CAST(NULL, 'Nullable(Decimal(38, 12))') AS l_cost,
                toUInt64(0) AS l_rows, toUInt64(0) AS l_calls, toUInt64(0) AS l_unpriced, toInt64(0) AS l_reasoning
            FROM {{db}}.v_provider_usage
            UNION ALL
            SELECT
                scope, day, provider, raw_model, item.1 AS token_type,
                CAST(NULL, 'Nullable(Int64)') AS p_tokens,
                CAST(NULL, 'Nullable(Decimal(38, 12))') AS p_cost,
                CAST(NULL, 'Nullable(Int64)') AS p_requests,
                sum(item.2) AS l_tokens,
                sum(item.3) AS l_cost,
                count() AS l_rows,
                countIf(item.1 = 'input') AS l_calls,
                countIf(item.3 IS NULL) AS l_unpriced,
                sum(item.4) AS l_reasoning
            FROM
            (
                SELECT
                    toDate(timestamp) AS day,
                    lower(provider) AS provider,
                    model AS raw_model,
                    tenant_id,
                    (currency = 'USD' AND total_cost IS NOT NULL) AS usd,
                    [
                        ('input', toInt64(input_tokens) - cache_read_tokens - cache_write_tokens,
                            if(usd, toDecimal128(input_cost, 12), NULL), toInt64(0)),
                        ('cache_read', toInt64(cache_read_tokens),
                            if(usd, toDecimal128(cache_read_cost, 12), NULL), toInt64(0)),
                        ('cache_write', toInt64(cache_write_tokens),
                            if(usd, toDecimal128(cache_write_cost, 12), NULL), toInt64(0)),
                        ('output', toInt64(output_tokens),
                            if(usd, toDecimal128(output_cost, 12), NULL), toInt64(reasoning_tokens))
                    ] AS items
                FROM {{db}}.v_calls
                WHERE price_status IN ('priced', 'unpriced')
                    AND (
                        (tenant_id, lower(provider), toDate(timestamp))
                            IN (SELECT tenant_id, provider, day FROM {{db}}.v_provider_usage WHERE tenant_id != '')
                        OR (lower(provider), toDate(timestamp))
                            IN (SELECT provider, day FROM {{db}}.v_provider_usage WHERE tenant_id = '')
                    )
            )
            ARRAY JOIN items AS item
            ARRAY JOIN [tenant_id, ''] AS scope
            GROUP BY scope, day, provider, raw_model, token_type
        )
        GROUP BY scope, day, provider, model, token_type
    )
    WINDOW model_day AS (PARTITION BY tenant_id, day, provider, model)
)
WHERE (tenant_id, provider, day) IN (SELECT tenant_id, provider, day FROM {{db}}.v_provider_usage)
    AND (coalesce(provider_tokens, 0) != 0 OR coalesce(provider_cost, 0) != 0 OR ledger_tokens != 0)
