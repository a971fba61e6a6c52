"""Where the collector's CPU goes, from a py-spy recording of a benchmark run.

Record a run with its child processes (py-spy is not in the lock: ``pip install py-spy`` into a
virtual environment of your own), then summarize the raw stacks by process and by function
(inclusive samples: a function counts every sample it is on the stack for):

    py-spy record -s -r 40 -f raw -o /tmp/stub.txt -- .venv/bin/python bench/collector_throughput.py \\
        --mode stub --batch 512 --spans 100000 --repeat 1 --out /tmp/stub.json
    .venv/bin/python bench/profile_summary.py /tmp/stub.txt --out bench/results/collector_profile.json

Samples are wall-clock samples of threads that are running (py-spy leaves idle threads out, but a
thread inside the engine's C++ code, or waiting in it, counts), so read them as shares, not CPU time.
Stacks whose innermost frame blocks (`_WAITS`) are counted apart as waiting.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_PROCESS = re.compile(r"(?:^|;)process \d+:")
_CODE = re.compile(r"^\S.* \(.+\)$")  # ``name (path:line)``; fragments of a command line are not
#: A process's role, by what its command line runs.
_ROLES = (
    ("tokenbook.collector.decode.pool", "decoder"),
    ("tokenbook.collector.ingest.buildpool", "build worker"),
    ("tokenbook collector", "collector"),
    ("multiprocessing.spawn", "sender"),
)
#: Innermost frames that block (a lock, a selector, a pipe or queue read, a gRPC poll): py-spy may
#: sample such a thread as active; counted apart as waiting.
_WAITS = frozenset(
    {
        "Condition.wait (threading.py)",
        "Event.wait (threading.py)",
        "EpollSelector.select (selectors.py)",
        "_worker (concurrent/futures/thread.py)",
        "_serve (grpc/_server.py)",
        "_Worker.build (collector/ingest/buildpool.py)",
        "_Child._request (collector/decode/pool.py)",
        "WriteAheadLog._wait_synced (collector/wal/log.py)",
        "Queue.get (queue.py)",
    }
)
_SKIP = ("Thread.", "_bootstrap", "_run_module_as_main", "_run_code", "<module>")


def _role(command: str) -> str:
    return next((role for marker, role in _ROLES if marker in command), "bench")


def _function(frame: str) -> str:
    """``name (path:line)`` -> ``name (path)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarize(lines: list[str], top: int = 25) -> dict[str, Any]:
    """Samples per process role, and each role's top functions (inclusive) and threads' entry points."""
    by_role: Counter[str] = Counter()
    waiting: Counter[str] = Counter()
    functions: dict[str, Counter[str]] = {}
    entries: dict[str, Counter[str]] = {}
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        # The innermost process's command line (it may itself hold ";") up to its first code frame.
        starts = [m.end() for m in _PROCESS.finditer(stack)]
        innermost = stack[starts[-1] :] if starts else ""
        role = _role(innermost.split('";', 1)[0])
        code = [f for f in innermost.split('";', 1)[-1].split(";") if _CODE.match(f)]
        if code and _function(code[-1]) in _WAITS:
            waiting[role] += n
            continue
        by_role[role] += n
        functions.setdefault(role, Counter()).update({f: n for f in {_function(f) for f in code}})
        entry = next((_function(f) for f in code if not f.startswith(_SKIP)), "?")
        entries.setdefault(role, Counter())[entry] += n
    return {
        "samples_by_process": dict(by_role.most_common()),
        "waiting_samples_by_process": dict(waiting.most_common()),
        "entry_points": {role: dict(c.most_common(top)) for role, c in entries.items()},
        "functions_inclusive": {role: dict(c.most_common(top)) for role, c in functions.items()},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Print (and with ``--out`` write) the summary of a py-spy raw file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("raw", type=Path, help="py-spy record -f raw output")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv if argv is not None else [])
    report = summarize(args.raw.read_text(encoding="utf-8").splitlines(), args.top)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
