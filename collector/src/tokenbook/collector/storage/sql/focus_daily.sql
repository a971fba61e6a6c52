-- `tokenbook export focus`: the FOCUS usage rows of [since, until) (whole UTC days), of one tenant or
-- all, from v_focus_daily (billed, priced calls, with what their price books bill). The export adds
-- the remaining FOCUS columns (and converts to another currency when asked).
SELECT
    day,
    tenant_id,
    project_id,
    provider,
    model,
    currency,
    price_source,
    service_tier,
    token_type,
    ListUnitPrice,
    ListCost,
    ContractedUnitPrice,
    BilledCost,
    ConsumedQuantity,
    x_CatalogVersion,
    x_PriceBook,
    x_Calls
FROM v_focus_daily
WHERE day >= {since:Date}
    AND day < {until:Date}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
ORDER BY
    day, tenant_id, project_id, provider, model, service_tier, token_type, price_source, x_PriceBook,
    ListUnitPrice, ContractedUnitPrice
