-- Every tenant with spend in the given hours (time-first roll-up: a primary-key range): the tenants
-- whose cost_hourly rows a model_hourly recomputation of those hours must read.
SELECT DISTINCT tenant_id FROM {{db}}.tenant_hourly WHERE hour IN {hours:Array(DateTime('UTC'))}
