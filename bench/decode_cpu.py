"""CPU of decoding a request for the log (`decode.pool.decode_for_log`), as a decoder process runs it.

Requests: the throughput benchmark's spans (`collector_throughput._build_spans`: agent runs with
usage, attribution, session, context and response IDs, the last distinct per span as in real
traffic), encoded by the official exporter's encoder in 512-span requests (the `BatchSpanProcessor`
default). Each pass decodes every request once whole, then every request's first of two parts
(`spans.Part`: what each of two idle decoder processes does for the answer), with the attribute memo
emptied before each (so attributes unique to a span are misses, as in real traffic), under the
decoder process's GC settings, ``privacy.content: drop`` and the default limits.

Where the collector was built with its C envelope walk (`decode/_walk.c`), each pass also decodes every
request whole with the walk set aside (``python_walk_whole``), so the two walks are timed in the same
passes.

Reported: CPU (process time) per request, minimum and median over the passes, for the whole body and
for one part, and the 1-minute load average. Run it with another checkout's interpreter to compare
two versions (the script is this checkout's; the decoder is the interpreter's):
``.venv/bin/python bench/decode_cpu.py [--spans 20000] [--passes 9] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.collector_throughput import SPANS_PER_RUN, _build_spans  # noqa: E402 - after the path set-up

BATCH = 512


def measure(spans: int, passes: int) -> dict[str, Any]:
    """Per-request CPU in ms of `decode_for_log`, whole and first of two parts (see the module docstring)."""
    from dataclasses import replace

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tokenbook.collector import gc_settings
    from tokenbook.collector.decode import spans as decode_spans
    from tokenbook.collector.decode.pool import FORMAT_PROTOBUF, decode_for_log
    from tokenbook.collector.ingest.rows import pipeline_keys
    from tokenbook.collector.limits import DEFAULT_LIMITS

    built = _build_spans(spans // SPANS_PER_RUN, 0)
    bodies = [encode_spans(built[i : i + BATCH]).SerializeToString() for i in range(0, len(built), BATCH)]
    keys = replace(pipeline_keys((), "drop"), limits=DEFAULT_LIMITS.attributes)
    gc_settings.settle()  # as in a decoder process
    walk = decode_spans._walk
    runs: list[tuple[str, decode_spans.Part, Any]] = [
        ("whole", decode_spans.WHOLE, walk),
        ("part", decode_spans.Part(0, 2), walk),
    ]
    if walk is not None:
        runs.append(("python_walk_whole", decode_spans.WHOLE, None))
    cpu_ms: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    try:
        for _ in range(passes):
            for name, part, walk_now in runs:
                decode_spans._walk = walk_now
                decode_spans._memo.cache_clear()  # an empty attribute memo: every distinct attribute a miss
                started = time.process_time()
                for body in bodies:
                    decode_for_log(FORMAT_PROTOBUF, body, keys, part=part)
                cpu_ms[name].append(1e3 * (time.process_time() - started) / len(bodies))
    finally:
        decode_spans._walk = walk
    return {
        "walk": "python" if walk is None else "c",
        "requests": len(bodies),
        "spans_per_request": BATCH,
        "request_bytes": round(statistics.median(len(b) for b in bodies)),
        **{
            f"{name}_cpu_ms_per_request": {"min": round(min(v), 3), "median": round(statistics.median(v), 3)}
            for name, v in cpu_ms.items()
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--passes", type=int, default=9)
    parser.add_argument("--out", type=Path, default=None, help="also write the result to this file")
    args = parser.parse_args(argv if argv is not None else [])
    result = {
        "command": f".venv/bin/python bench/decode_cpu.py --spans {args.spans} --passes {args.passes}",
        "python": sys.executable,
        **measure(args.spans, args.passes),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
