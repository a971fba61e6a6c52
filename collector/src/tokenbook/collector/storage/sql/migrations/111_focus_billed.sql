-- FOCUS usage with what the tenants are billed: v_focus_daily made again from the ledger's billed costs
-- (migration 110). One row per day x tenant x project x model x service tier x token type (input,
-- output with reasoning inside, cache read, five-minute cache write, one-hour cache write), split
-- further by list unit price, billed unit price and the price book entry that billed the calls, so that
-- ListCost = ListUnitPrice x PricingQuantity exactly and, where the billed cost of every call is its
-- tokens times one unit price, ContractedCost = ContractedUnitPrice x PricingQuantity too (a markup
-- rounded per call may leave no exact billed unit price: ContractedUnitPrice is then NULL).
-- BilledCost = EffectiveCost = ContractedCost: the billed cost (the list cost without a book; a row
-- written by a collector without the billed columns counts at its list cost).
CREATE OR REPLACE VIEW {{db}}.v_focus_daily {{on_cluster}} AS
SELECT
    day,
    tenant_id,
    project_id,
    provider,
    model,
    currency,
    price_source,
    service_tier,
    price_book,
    price_book_entry,
    token_type,
    unit_price,
    billed_unit_price,
    toDateTime64(day, 0, 'UTC') AS ChargePeriodStart,
    toDateTime64(day + 1, 0, 'UTC') AS ChargePeriodEnd,
    toDateTime64(toStartOfMonth(day), 0, 'UTC') AS BillingPeriodStart,
    toDateTime64(addMonths(toStartOfMonth(day), 1), 0, 'UTC') AS BillingPeriodEnd,
    'Usage' AS ChargeCategory,
    CAST(NULL, 'Nullable(String)') AS ChargeClass,
    currency AS BillingCurrency,
    sum(cost) AS ListCost,
    sum(billed) AS BilledCost,
    BilledCost AS EffectiveCost,
    BilledCost AS ContractedCost,
    sum(quantity) AS ConsumedQuantity,
    'Tokens' AS ConsumedUnit,
    toDecimal128(ConsumedQuantity, 6) / 1000000 AS PricingQuantity,
    '1000000 Tokens' AS PricingUnit,
    if(isNull(unit_price), NULL, toDecimal128(assumeNotNull(unit_price), 12) * 1000000) AS ListUnitPrice,
    if(isNull(billed_unit_price), NULL, toDecimal128(assumeNotNull(billed_unit_price), 12) * 1000000)
        AS ContractedUnitPrice,
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
    if(price_book = '', '', concat(price_book, '/', if(price_book_entry = '', '(list price)', price_book_entry)))
        AS x_PriceBook,
    service_tier AS x_ServiceTier,
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
        service_tier,
        price_book,
        price_book_entry,
        item.1 AS token_type,
        item.2 AS quantity,
        item.3 AS cost,
        item.4 AS billed,
        if(item.2 > 0 AND (item.3 / item.2) * item.2 = item.3, item.3 / item.2, NULL) AS unit_price,
        if(item.2 > 0 AND (item.4 / item.2) * item.2 = item.4, item.4 / item.2, NULL) AS billed_unit_price
    FROM
    (
        SELECT
            *,
            toDecimal128(assumeNotNull(input_cost), 12) AS c_in,
            toDecimal128(assumeNotNull(output_cost), 12) AS c_out,
            toDecimal128(assumeNotNull(cache_read_cost), 12) AS c_read,
            toDecimal128(assumeNotNull(cache_write_cost), 12) AS c_write,
            toDecimal128(ifNull(cache_write_1h_cost, 0), 12) AS c_1h,
            toDecimal128(ifNull(billed_input_cost, c_in), 12) AS b_in,
            toDecimal128(ifNull(billed_output_cost, c_out), 12) AS b_out,
            toDecimal128(ifNull(billed_cache_read_cost, c_read), 12) AS b_read,
            toDecimal128(ifNull(billed_cache_write_cost, c_write), 12) AS b_write,
            toDecimal128(ifNull(billed_cache_write_1h_cost, c_1h), 12) AS b_1h,
            if(c_read > 0, cache_read_tokens, 0) AS n_read,
            if(c_write > 0, cache_write_tokens, 0) AS n_write,
            if(c_write > 0 AND cache_write_1h_cost IS NOT NULL, ifNull(cache_write_1h_tokens, 0), 0) AS n_1h
        FROM {{db}}.v_calls
        WHERE price_status = 'priced'
    )
    ARRAY JOIN [
        ('input', toUInt64(input_tokens - n_read - n_write), c_in, b_in),
        ('output', toUInt64(output_tokens), c_out, b_out),
        ('cache_read', toUInt64(n_read), c_read, b_read),
        ('cache_write', toUInt64(n_write - n_1h), c_write - c_1h, b_write - b_1h),
        ('cache_write_1h', toUInt64(n_1h), c_1h, b_1h)
    ] AS item
    WHERE item.2 > 0 OR item.3 != 0 OR item.4 != 0
)
GROUP BY
    day, tenant_id, project_id, provider, model, currency, price_source, service_tier, price_book,
    price_book_entry, token_type, unit_price, billed_unit_price
;
-- What an export recorded, with what FOCUS 1.2 needs when it is converted to another currency (the
-- pricing currency's unit prices and billed cost, and the day's exchange rate), and the service tier.
-- A run records its billing currency ('' = the ledger's): a later export corrects earlier exports of
-- the same currency only.
ALTER TABLE {{table:focus_export_rows}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String),
    ADD COLUMN IF NOT EXISTS pricing_currency LowCardinality(String),
    ADD COLUMN IF NOT EXISTS pricing_list_unit_price Nullable(Decimal(38, 12)),
    ADD COLUMN IF NOT EXISTS pricing_contracted_unit_price Nullable(Decimal(38, 12)),
    ADD COLUMN IF NOT EXISTS pricing_billed_cost Nullable(Decimal(38, 12)),
    ADD COLUMN IF NOT EXISTS exchange_rate Nullable(Decimal(38, 18))
;
ALTER TABLE {{db}}.focus_export_rows {{on_cluster}}
    ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String),
    ADD COLUMN IF NOT EXISTS pricing_currency LowCardinality(String),
    ADD COLUMN IF NOT EXISTS pricing_list_unit_price Nullable(Decimal(38, 12)),
    ADD COLUMN IF NOT EXISTS pricing_contracted_unit_price Nullable(Decimal(38, 12)),
    ADD COLUMN IF NOT EXISTS pricing_billed_cost Nullable(Decimal(38, 12)),
    ADD COLUMN IF NOT EXISTS exchange_rate Nullable(Decimal(38, 18))
;
ALTER TABLE {{table:focus_export_runs}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS currency LowCardinality(String)
;
ALTER TABLE {{db}}.focus_export_runs {{on_cluster}}
    ADD COLUMN IF NOT EXISTS currency LowCardinality(String)
;
