-- Service tiers, cache lifetimes and price books (docs/guide/chargeback.md).
-- service_tier: the tier the span says the call was served at (standard, flex, priority, batch, ...;
--   '' when it says none: priced as standard). A tier without a known price leaves the call unpriced.
-- cache_write_1h_tokens / cache_write_1h_cost: the part of the cache writes (tokens, cost) written with
--   a one-hour lifetime, priced at its own rate; NULL when the span does not split cache writes.
-- billed_*_cost: what the tenant's price book bills (a markup, a discount or prices of its own); equal
--   to the list costs (*_cost) without a book, NULL when the call is unpriced. billed_cost is exactly
--   the sum of the four billed components. price_book ('<file>#<book>') and price_book_entry name the
--   book and the entry that billed the call ('' when none).
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String),
    ADD COLUMN IF NOT EXISTS cache_write_1h_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS cache_write_1h_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_input_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_output_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_cache_read_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_cache_write_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_cache_write_1h_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS price_book LowCardinality(String),
    ADD COLUMN IF NOT EXISTS price_book_entry LowCardinality(String)
;
ALTER TABLE {{db}}.llm_calls {{on_cluster}}
    ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String),
    ADD COLUMN IF NOT EXISTS cache_write_1h_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS cache_write_1h_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_input_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_output_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_cache_read_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_cache_write_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_cache_write_1h_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS billed_cost Nullable(Decimal(18, 12)),
    ADD COLUMN IF NOT EXISTS price_book LowCardinality(String),
    ADD COLUMN IF NOT EXISTS price_book_entry LowCardinality(String)
;
-- Rows written before this migration had no book: their billed costs are their list costs.
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    UPDATE
        billed_input_cost = input_cost,
        billed_output_cost = output_cost,
        billed_cache_read_cost = cache_read_cost,
        billed_cache_write_cost = cache_write_cost,
        billed_cost = total_cost
    WHERE billed_cost IS NULL AND total_cost IS NOT NULL
    SETTINGS mutations_sync = 1
;
-- The call views list the table's columns as of their creation: made again with the new ones (FINAL
-- within each partition: the partition key is part of the sorting key, so it is exact).
CREATE OR REPLACE VIEW {{db}}.v_call_candidates {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {{db}}.v_calls {{on_cluster}} AS
SELECT * FROM {{db}}.llm_calls FINAL
WHERE price_status NOT IN ('duplicate_layer', 'wrapper')
SETTINGS do_not_merge_across_partitions_select_final = 1
;
