-- Prompt composition (docs/reference/prompt-composition.md): the input tokens of a model call split over
-- the parts of its prompt, measured from the content before it was dropped. The seven parts sum exactly
-- to input_tokens; all are NULL when the call was not measured (no content reached tokenbook), never 0.
-- prompt_estimated: true when apportioned by each part's share of the text, false when counted with
-- the model's tokenizer (the remainder is then prompt_overhead_tokens).
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS prompt_system_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_history_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_retrieved_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_tool_result_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_user_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_tool_definition_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_overhead_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_estimated Nullable(Bool)
;
ALTER TABLE {{db}}.llm_calls {{on_cluster}}
    ADD COLUMN IF NOT EXISTS prompt_system_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_history_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_retrieved_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_tool_result_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_user_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_tool_definition_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_overhead_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS prompt_estimated Nullable(Bool)
;
-- The call views list the table's columns as of their creation: made again with the new ones.
CREATE OR REPLACE VIEW {{db}}.v_call_candidates {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
;
CREATE OR REPLACE VIEW {{db}}.v_calls {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
WHERE price_status NOT IN ('duplicate_layer', 'wrapper')
;
-- One row per measured billed call and prompt part: spend by part is a GROUP BY away.
CREATE OR REPLACE VIEW {{db}}.v_prompt_parts {{on_cluster}} AS
SELECT
    timestamp,
    toDate(timestamp) AS day,
    tenant_id,
    context_id,
    trace_id,
    span_id,
    provider,
    model,
    feature,
    part,
    tokens,
    input_tokens,
    assumeNotNull(prompt_estimated) AS estimated
FROM {{db}}.v_calls
ARRAY JOIN
    ['system', 'history', 'retrieved', 'tool_result', 'user', 'tool_definition', 'overhead'] AS part,
    [
        assumeNotNull(prompt_system_tokens), assumeNotNull(prompt_history_tokens),
        assumeNotNull(prompt_retrieved_tokens), assumeNotNull(prompt_tool_result_tokens),
        assumeNotNull(prompt_user_tokens), assumeNotNull(prompt_tool_definition_tokens),
        assumeNotNull(prompt_overhead_tokens)
    ] AS tokens
WHERE prompt_system_tokens IS NOT NULL
;
