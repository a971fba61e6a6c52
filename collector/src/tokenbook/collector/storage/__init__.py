"""Stage 5, storage: the ClickHouse ledger (embedded chDB or a server), its schema and its rows.

`ledger` defines the rows and `rowcodec` their insert blocks; `store.Store` is the connection and
`guard` the check in front of user SQL; `migrate` and `sqltemplate` render and apply the schema (SQL
in `sql/`); `owner` says who holds an embedded directory; `reprice` re-prices stored calls.
"""

__all__: list[str] = []
