-- Merges of the ledger's parts read one column at a time (the vertical merge algorithm), whatever the
-- parts' size. A horizontal merge reads every column of every part at once, a read buffer each: merging
-- six 20,000-row parts of llm_calls (10 MiB compressed) held 357 MiB of the engine's memory for a
-- second, the collector's highest peak after a burst; read vertically, the engine's tracked memory
-- stayed under 62 MiB through the same run. The engine's defaults merge vertically only from 131,072
-- rows and 11 columns.
ALTER TABLE {{table:llm_calls}} {{on_cluster}}
    MODIFY SETTING vertical_merge_algorithm_min_rows_to_activate = 1,
        vertical_merge_algorithm_min_columns_to_activate = 1
;
ALTER TABLE {{table:context_steps}} {{on_cluster}}
    MODIFY SETTING vertical_merge_algorithm_min_rows_to_activate = 1,
        vertical_merge_algorithm_min_columns_to_activate = 1
