"""Before/after of the acknowledgement path, in alternating runs on the same machine state.

`--base-python` is the interpreter of another checkout's virtual environment (e.g. a worktree of the
previous commit, `make install` run there): its collector is the "before". Each round runs, for the
base then for this checkout, `exporter_vs_sink.py` (the official exporter against the collector and
an instant-ack sink) and `collector_throughput.py --mode stub` (pre-encoded 512-span requests, rows
visible), so slow phases of a shared machine hit both alike. The benchmark scripts are this
checkout's; only the collector they start differs.

Reported per version: the exporter's ratio (collector / sink, medians over the rounds' runs), the
collector's CPU per span under the exporter, and the stub mode's spans/s visible, acknowledged and CPU
per span, each round's figures and the 1-minute load average beside them.
Run: ``.venv/bin/python bench/ack_ab.py --base-python ../base/.venv/bin/python [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.result_file import write_result  # noqa: E402 - after the path set-up

RESULT = HERE / "results" / "ack_path_ab.json"


def _bench(python: str, script: str, args: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tokenbook-ab-") as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run([python, str(HERE / script), *args, "--out", str(out)], check=True, cwd=HERE.parent)
        doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return doc


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-python", required=True, help="the previous version's interpreter")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--exporter-spans", type=int, default=20_000)
    parser.add_argument("--exporter-pairs", type=int, default=2)
    parser.add_argument("--stub-spans", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULT, help="the result file")
    args = parser.parse_args(argv if argv is not None else [])
    versions = {"before": args.base_python, "after": sys.executable}
    rounds: list[dict[str, Any]] = []
    for i in range(args.rounds):
        for name, python in versions.items():
            exporter = _bench(
                python,
                "exporter_vs_sink.py",
                ["--spans", str(args.exporter_spans), "--pairs", str(args.exporter_pairs)],
            )
            stub = _bench(
                python,
                "collector_throughput.py",
                ["--spans", str(args.stub_spans), "--senders", "2", "--batch", "512", "--mode", "stub",
                 "--repeat", "1"],
            )["runs"][0]  # fmt: skip
            row = {
                "round": i + 1,
                "version": name,
                "exporter_sink_runs": exporter["runs"]["sink"],
                "exporter_collector_runs": exporter["runs"]["collector"],
                "exporter_ratio": exporter["ratio"],
                "exporter_collector_cpu_us_per_span": exporter["collector_cpu_us_per_span"],
                "stub_spans_per_s": stub["spans_per_s"],
                "stub_ack_spans_per_s": stub["ack_spans_per_s"],
                "stub_collector_cpu_us_per_span": stub["collector_cpu_us_per_span"],
                "stub_cpu_us_per_span_by_process": stub.get("cpu_us_per_span_by_process"),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
            rounds.append(row)
            print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {}
    for name in versions:
        mine = [r for r in rounds if r["version"] == name]
        sink = median(x for r in mine for x in r["exporter_sink_runs"])
        coll = median(x for r in mine for x in r["exporter_collector_runs"])
        summary[name] = {
            "exporter_median_sink_spans_per_s": sink,
            "exporter_median_collector_spans_per_s": coll,
            "exporter_ratio": round(coll / sink, 3),
            "exporter_collector_cpu_us_per_span": median(
                r["exporter_collector_cpu_us_per_span"] for r in mine
            ),
            "stub_spans_per_s": median(r["stub_spans_per_s"] for r in mine),
            "stub_ack_spans_per_s": median(r["stub_ack_spans_per_s"] for r in mine),
            "stub_collector_cpu_us_per_span": median(r["stub_collector_cpu_us_per_span"] for r in mine),
            "stub_cpu_us_per_span_by_process": {
                process: median(r["stub_cpu_us_per_span_by_process"][process] for r in mine)
                for process in (mine[0]["stub_cpu_us_per_span_by_process"] or {})
            },
        }
    report = {
        "command": (
            f".venv/bin/python bench/ack_ab.py --base-python BASE/.venv/bin/python --rounds {args.rounds}"
            f" --exporter-spans {args.exporter_spans} --exporter-pairs {args.exporter_pairs}"
            f" --stub-spans {args.stub_spans}" + ("" if args.out == RESULT else f" --out {args.out}")
        ),
        "medians": summary,
        "rounds": rounds,
        "cpus": os.cpu_count(),
    }
    write_result(args.out, report, summary)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
