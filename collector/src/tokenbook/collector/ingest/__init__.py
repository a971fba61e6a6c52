"""Stage 3, ingest: one export request from body to durable rows, behind the receivers.

`ingestor.Ingestor` admits a request, has it decoded, drops re-delivered spans (`dedup`), builds
ledger rows (`rows.RowBuilder`: normalize, classify, price, attribute) and appends them to the
write-ahead log before the receiver acknowledges.
"""

__all__: list[str] = []
