-- `tokenbook report` with an empty window: what the ledger holds overall (of one tenant, or all), to
-- say why.
SELECT count(), max(timestamp) FROM v_calls WHERE {tenant:String} = '' OR tenant_id = {tenant:String}
