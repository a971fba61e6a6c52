-- `tokenbook quarantine replay`: every row still quarantined, each as the log's codec wrote it, oldest
-- first.
SELECT table_name, row FROM {{db}}.quarantine FINAL WHERE state = 'quarantined' ORDER BY quarantined_at
