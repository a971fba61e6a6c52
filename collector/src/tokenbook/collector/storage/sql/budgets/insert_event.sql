-- One budget event (collector/budgets/events.py EVENT_COLUMNS order); every value is bound.
INSERT INTO {{db}}.budget_events
SELECT
    {event_time:DateTime64(6, 'UTC')},
    {event_id:String},
    {kind:String},
    {rule:String},
    {state:String},
    {previous_state:String},
    {enforcement:String},
    {tenant_id:String},
    {context_id:String},
    {subject_keys:Array(String)},
    {subject_values:Array(String)},
    {window:String},
    {window_start:DateTime64(6, 'UTC')},
    {window_end:Nullable(DateTime64(6, 'UTC'))},
    {used_tokens:UInt64},
    {limit_tokens:Nullable(UInt64)},
    {used_cost:Decimal(38, 12)},
    {limit_cost:Nullable(Decimal(18, 12))},
    {currency:String},
    {message:String}
