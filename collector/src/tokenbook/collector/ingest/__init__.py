"""Stage 3, ingest: one export request from body to durable rows, behind the receivers.

`ingestor.Ingestor` checks and admits a request (`deferred.check`), drops re-delivered spans
(`dedup`) and appends the request to the write-ahead log before the receiver acknowledges; worker
processes (`buildpool`) then build its ledger rows (`rows.RowBuilder`: normalize, classify, price,
attribute) for the writer. With ``receivers.otlp.ack: built`` the rows are built and logged before
the answer instead.
"""

__all__: list[str] = []
