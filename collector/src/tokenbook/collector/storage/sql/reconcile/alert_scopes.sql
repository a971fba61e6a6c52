-- Drift alerts: the tenant scopes and days with provider figures since a day (what the check reads).
SELECT DISTINCT tenant_id
FROM {{db}}.v_provider_usage
WHERE day >= {since:Date}
ORDER BY tenant_id
