"""Stage 4, the write-ahead log: what was acknowledged survives ``kill -9`` and storage outages.

`log.WriteAheadLog` is the segmented, fsynced log; `writer.LedgerWriter` drains it into storage in
batches.
"""

__all__: list[str] = []
