-- `tokenbook export focus`: the list-price FOCUS usage rows of [since, until) (whole UTC days), of one
-- tenant or all, from v_focus_daily (billed, priced calls). The export applies price books and adds
-- the remaining FOCUS columns.
SELECT
    day,
    tenant_id,
    project_id,
    provider,
    model,
    currency,
    price_source,
    token_type,
    ListUnitPrice,
    ListCost,
    ConsumedQuantity,
    x_CatalogVersion,
    x_Calls
FROM v_focus_daily
WHERE day >= {since:Date}
    AND day < {until:Date}
    AND ({tenant:String} = '' OR tenant_id = {tenant:String})
ORDER BY day, tenant_id, project_id, provider, model, token_type, price_source, ListUnitPrice
