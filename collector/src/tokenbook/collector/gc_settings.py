"""The garbage collector's settings in every process of the collector (the collector itself, its
decoder processes and its row-building workers), and in the benchmarks that measure their stages.

The hot paths allocate a dict and tuples per span and no reference cycles, so the default thresholds
(a young collection every 700 allocations) cost about a quarter of the decode and of the collector's
CPU at full load; and what a process has built when it starts serving (protobuf descriptors, the
engine's bindings, the price catalog) lives as long as the process.
"""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> None:
    """Collect once, move every object alive now out of later collections (``gc.freeze``), and
    collect the young generation every ~50,000 net allocations instead of 700. Call it when the
    process's long-lived objects are built, before it serves; cycles are still collected, later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
