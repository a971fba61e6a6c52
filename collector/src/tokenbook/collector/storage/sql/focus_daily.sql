-- `tokenbook export focus`: the FOCUS usage rows of [since, until) (whole UTC days), of one tenant or
-- all, from v_focus_daily (billed, priced calls, with what their price books bill). The export adds
-- the remaining FOCUS columns (and converts to another currency when asked). The columns are named
-- as `focus_export_rows` names them, so that one reader (`FocusLine.of`) takes both.
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
    ListUnitPrice AS list_unit_price,
    ListCost AS list_cost,
    ContractedUnitPrice AS contracted_unit_price,
    BilledCost AS billed_cost,
    ConsumedQuantity AS quantity,
    x_CatalogVersion AS catalog_version,
    x_PriceBook AS book,
    x_Calls AS calls
FROM v_focus_daily
WHERE day >= {since:Date}
    AND day < {until:Date}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
ORDER BY
    day, tenant_id, project_id, provider, model, service_tier, token_type, price_source, x_PriceBook,
    ListUnitPrice, ContractedUnitPrice
