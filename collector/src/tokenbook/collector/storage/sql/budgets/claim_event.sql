-- One alert claim (migration 090): this collector wants to deliver `event_id`; the server's clock
-- orders the claims of the fleet.
INSERT INTO {{db}}.budget_event_claims
SELECT {event_id:String}, {collector_id:String}, now64(6, 'UTC')
