-- Finding a context by its ID alone (migration 050's bloom filter over context_id) read about two
-- granules of context_costs: the context's own and, at a false-positive rate of 1 % over the ~120
-- granules a million contexts fill, about one more. At 0.1 % it reads one (1.08 granules a lookup
-- against 2.0 over 60 contexts of a 1M-context store), for ~0.6 byte more of index per context. The
-- new index is built before the old one goes, so that no lookup runs without one.
ALTER TABLE {{table:context_costs}} {{on_cluster}}
    ADD INDEX IF NOT EXISTS idx_context_lookup context_id TYPE bloom_filter(0.001) GRANULARITY 1
;
ALTER TABLE {{table:context_costs}} {{on_cluster}} MATERIALIZE INDEX idx_context_lookup
;
ALTER TABLE {{table:context_costs}} {{on_cluster}} DROP INDEX IF EXISTS idx_context_id
