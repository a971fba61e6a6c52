-- FOCUS (FinOps Open Cost and Usage Specification) usage, one row per day x tenant x project x model x
-- token type (input, output with reasoning inside, cache read, cache write), from the billed calls
-- (v_calls) that have a price: an unpriced call has no cost to report (`tokenbook prices --unpriced`
-- lists them) and a cache hit made no model call. A row is split further when its calls were priced
-- at different unit prices (price source or tier), so ListCost = ListUnitPrice x PricingQuantity
-- exactly; ListUnitPrice is NULL only for a mix a per-call division cannot state exactly (e.g. output
-- with a separate reasoning rate).
--
-- The view is at list price: BilledCost = EffectiveCost = ListCost, the catalog or override price.
-- `tokenbook export focus` reads this view and applies the tenants' price books, corrections and the
-- remaining FOCUS columns (docs/design/chargeback.md). Cache tokens of a call whose price has no cache
-- rate were priced at the input rate (docs/design/usage-and-pricing.md): they count as input here.
CREATE OR REPLACE VIEW {{db}}.v_focus_daily {{on_cluster}} AS
SELECT
    day,
    tenant_id,
    project_id,
    provider,
    model,
    currency,
    price_source,
    token_type,
    unit_price,
    toDateTime64(day, 0, 'UTC') AS ChargePeriodStart,
    toDateTime64(day + 1, 0, 'UTC') AS ChargePeriodEnd,
    toDateTime64(toStartOfMonth(day), 0, 'UTC') AS BillingPeriodStart,
    toDateTime64(addMonths(toStartOfMonth(day), 1), 0, 'UTC') AS BillingPeriodEnd,
    'Usage' AS ChargeCategory,
    CAST(NULL, 'Nullable(String)') AS ChargeClass,
    currency AS BillingCurrency,
    sum(cost) AS ListCost,
    ListCost AS BilledCost,
    ListCost AS EffectiveCost,
    sum(quantity) AS ConsumedQuantity,
    'Tokens' AS ConsumedUnit,
    toDecimal128(ConsumedQuantity, 6) / 1000000 AS PricingQuantity,
    '1000000 Tokens' AS PricingUnit,
    if(isNull(unit_price), NULL, toDecimal128(assumeNotNull(unit_price), 12) * 1000000) AS ListUnitPrice,
    concat(provider, '/', model, '/', token_type) AS SkuId,
    tenant_id AS SubAccountId,
    tenant_id AS SubAccountName,
    provider AS ProviderName,
    provider AS PublisherName,
    provider AS InvoiceIssuerName,
    'AI and Machine Learning' AS ServiceCategory,
    price_source AS x_PriceSource,
    if(startsWith(price_source, 'genai-prices '), arrayStringConcat(arraySlice(splitByChar(' ', price_source), 1, 2), ' '), '')
        AS x_CatalogVersion,
    count() AS x_Calls
FROM
(
    SELECT
        toDate(timestamp) AS day,
        tenant_id,
        project_id,
        provider,
        model,
        currency,
        price_source,
        item.1 AS token_type,
        item.2 AS quantity,
        item.3 AS cost,
        if(item.2 > 0 AND (item.3 / item.2) * item.2 = item.3, item.3 / item.2, NULL) AS unit_price
    FROM
    (
        SELECT
            *,
            toDecimal128(assumeNotNull(input_cost), 12) AS c_in,
            toDecimal128(assumeNotNull(output_cost), 12) AS c_out,
            toDecimal128(assumeNotNull(cache_read_cost), 12) AS c_read,
            toDecimal128(assumeNotNull(cache_write_cost), 12) AS c_write,
            if(c_read > 0, cache_read_tokens, 0) AS n_read,
            if(c_write > 0, cache_write_tokens, 0) AS n_write
        FROM {{db}}.v_calls
        WHERE price_status = 'priced'
    )
    ARRAY JOIN [
        ('input', toUInt64(input_tokens - n_read - n_write), c_in),
        ('output', toUInt64(output_tokens), c_out),
        ('cache_read', toUInt64(n_read), c_read),
        ('cache_write', toUInt64(n_write), c_write)
    ] AS item
    WHERE item.2 > 0 OR item.3 != 0
)
GROUP BY day, tenant_id, project_id, provider, model, currency, price_source, token_type, unit_price
