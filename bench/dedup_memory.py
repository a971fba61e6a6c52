"""The dedup memory (`tokenbook.collector.ingest.dedup.RecentSpanKeys`): RSS per million keys, and
the time to look up and remember a request's keys when it is full.

`python bench/dedup_memory.py [--keys 1000000] [--out bench/results/dedup_memory.json]`

Each layout is filled in a fresh child process and measured as the growth of its RSS (VmRSS after,
minus before, NumPy imported in both): the memory filled by `remember` in batches of 500 keys (the
ingest path), filled by `warm` from 125k-key slices (the start-up warm-up, as storage returns them),
and, for comparison, an insertion-ordered `dict` of the raw 35-byte keys (trace ID, span ID, an
11-character tenant) that the memory held before it kept 16-byte digests in frozen arrays. Then, in
the full memory, the CPU of what each acknowledged 512-span request costs it before the answer
(`unseen`, then `remember` of the new keys), the median of 5 rounds of 100 requests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "dedup_memory.json"
LAYOUTS = ("remember", "warm", "dict_of_raw_keys")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _fill(layout: str, n: int) -> dict[str, Any]:
    """In this process: fill one layout with `n` keys, return the RSS growth (and, for the dedup
    memory, the time a request's keys then take: `_request_ms`)."""
    from datetime import UTC, datetime

    from tokenbook.collector.ingest.dedup import KEY_BYTES, RecentSpanKeys, record_key
    from tokenbook.collector.storage.store import KeySlice

    before = _rss_mib()
    held: Any
    if layout == "dict_of_raw_keys":
        held = dict.fromkeys(os.urandom(24) + b"tenant-0001" for _ in range(n))
    elif layout == "remember":
        held = RecentSpanKeys(n)
        for _ in range(0, n, 500):
            held.remember([record_key("tenant-0001", os.urandom(16), os.urandom(8)) for _i in range(500)])
    else:
        held = RecentSpanKeys(n)
        now = datetime.now(UTC)
        pieces = (KeySlice(os.urandom(KEY_BYTES * held.generation_keys), now, now) for _ in range(8))
        held.warm(pieces)
    result: dict[str, Any] = {"keys": len(held), "rss_growth_mib": round(_rss_mib() - before, 1)}
    if isinstance(held, RecentSpanKeys):
        result["request_ms_per_512_keys"] = _request_ms(held)
    return result


def _request_ms(held: Any) -> float:
    """CPU ms of `unseen` + `remember` of 512 new keys, median of 5 rounds of 100 requests."""
    import statistics
    import time

    rounds = []
    for _ in range(5):
        requests = [[os.urandom(16) for _ in range(512)] for _ in range(100)]
        started = time.process_time()
        for keys in requests:
            frozen = held.frozen_version
            fresh = held.unseen(keys)
            held.remember([keys[i] for i in fresh], unseen_at=frozen)
        rounds.append(1000 * (time.process_time() - started) / len(requests))
    return round(statistics.median(rounds), 3)


def main() -> dict[str, Any]:
    """Measure each layout in a child process and write the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument("--layout", choices=LAYOUTS, help=argparse.SUPPRESS)  # the child's part
    args = ap.parse_args()
    if args.layout:
        import numpy  # noqa: F401 - in the baseline of every layout

        print(json.dumps(_fill(args.layout, args.keys)))
        return {}
    layouts = {}
    for layout in LAYOUTS:
        out = subprocess.run(
            [sys.executable, __file__, "--keys", str(args.keys), "--layout", layout],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(out.splitlines()[-1])
        result["mib_per_million_keys"] = round(result["rss_growth_mib"] * 1_000_000 / result["keys"], 1)
        layouts[layout] = result
    doc = {"command": f"python bench/dedup_memory.py --keys {args.keys}", "layouts": layouts}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
