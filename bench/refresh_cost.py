"""CPU of the aggregate refresh and decision pass, per pass and per statement, on the embedded store.

The refresh (`Store.refresh_aggregates`: the decision pass, `context_costs`, the hourly roll-ups) runs
after every batch the writer inserts. Its cost is mostly the engine's per-statement cost (parse,
analyse, plan), so this measures it per statement kind, in the two cases that matter:

* ``small``: a request of a few agent runs written, then one refresh (steady load, and the tests);
* ``large``: a burst of many runs written, then one refresh.

The spans come from the throughput benchmark's generator (`collector_throughput.agent_run`: an agent
wrapper over three chat calls and a tool call, 50 tenants), encoded once by the official exporter's
encoder, decoded and priced by the collector's own code (`decode_protobuf`, `RowBuilder`), written with
`Store.write` into a freshly migrated embedded store that first receives a history of ``--history``
runs. Each pass is timed in process CPU seconds (the engine runs in this process) and wall time, and
every statement the refresh sends is attributed to its `.sql` file.

With ``--base-python`` (another checkout's interpreter, `make install` run there) each round runs the
worker for the base, then for this checkout, on the same encoded requests, so a slow phase of a shared
machine hits both alike; the script is this checkout's, the store code is each interpreter's. Every
worker ends with a digest of what the refresh produced (the ledger and every aggregate, FINAL, minus
the columns that hold the time of writing): equal digests mean the same results.
``--busy-day ROWS`` first writes that many calls, and as many steps, of unrelated traces over the
day (``--busy-days N``: the N days) before the spans, written by the engine
(`tests.cli.seed_store.write_busy_day`), of 50 other tenants or (``--busy-tenants same``) of the
spans' own 50, whose hours the hourly refresh then recomputes: a pass should cost what it touched,
not what the day or the month holds. The digests leave the busy rows out of the tables that have
their contexts (`tests.cli.seed_store.BUSY_CONTEXT_PREFIX`).
Run: ``.venv/bin/python bench/refresh_cost.py [--base-python BASE/.venv/bin/python] [--rounds 3]
[--small-passes 40] [--large-passes 4] [--busy-day 2000000]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.result_file import write_result  # noqa: E402
from tests.cli.seed_store import BUSY_CONTEXT_PREFIX, write_busy_day  # noqa: E402 - after the path set-up

RESULT = HERE / "results" / "refresh_cost.json"
#: Columns that hold when a row was written (or a version derived from it): left out of the digest.
_VOLATILE = {"ingested_at", "refreshed_at", "version"}
#: Rows of the busy day written per statement.
_BUSY_STATEMENT = 1_000_000
#: The tenants of the spans (`collector_throughput.agent_run`: tenant-0 ... tenant-49).
_SPANS_TENANTS = "tenant-"
_DIGESTED = ("llm_calls", "context_steps", "context_costs", "cost_hourly", "tenant_hourly", "model_hourly")


def _requests(history: int, small: int, small_passes: int, large: int, large_passes: int) -> dict[str, Any]:
    """The encoded requests of every phase (one request per write)."""
    from collector_throughput import _build_spans
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    def bodies(runs: int, writes: int, seed: int, per_request: int) -> list[list[bytes]]:
        spans = _build_spans(runs * writes, seed)
        per_write = len(spans) // writes
        out = []
        for w in range(writes):
            part = spans[w * per_write : (w + 1) * per_write]
            out.append(
                [
                    encode_spans(part[i : i + per_request]).SerializeToString()
                    for i in range(0, len(part), per_request)
                ]
            )
        return out

    return {
        "busy_end": datetime.now(UTC),  # the busy day (`--busy-day`) ends as the spans begin
        "history": bodies(history, 10, 1, 2000),
        "small": bodies(small, small_passes, 2, 2000),
        "large": bodies(large, large_passes, 3, 2000),
    }


def _statement_names(database: str) -> dict[str, str]:
    """Rendered SQL text -> the name of its `.sql` file."""
    from tokenbook.collector.storage import store as store_module
    from tokenbook.collector.storage.sqltemplate import render_query

    folder = Path(store_module.__file__).resolve().parent / "sql"
    names: dict[str, str] = {}
    for path in sorted(folder.glob("*.sql")):
        try:
            names[render_query(path.name, database)] = path.stem
        except ValueError:  # a file of several statements (a refresh runs only single ones)
            continue
    return names


def _instrument(names: dict[str, str], sink: dict[str, list[float]]) -> None:
    """Time every statement a store session runs (CPU ms), by `.sql` file."""
    from tokenbook.collector.storage import store as store_module

    session = store_module._Session

    def timed(kind: str, fn: Any) -> Any:
        def run(self: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
            name = names.get(sql, "other") if kind != "insert" else f"insert {sql}"
            started = time.process_time()
            try:
                return fn(self, sql, *args, **kwargs)
            finally:
                sink[name].append(1000 * (time.process_time() - started))

        return run

    session.query = timed("query", session.query)  # type: ignore[method-assign]
    session.command = timed("command", session.command)  # type: ignore[method-assign]
    session.insert = timed("insert", session.insert)  # type: ignore[method-assign]


def _digest(store: Any) -> str:
    """A digest of the ledger and every aggregate as read with FINAL, minus the write-time columns."""
    h = hashlib.sha256()
    for table in _DIGESTED:
        columns = [
            name
            for (name,) in store.query(
                "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
                "ORDER BY position",
                {"db": store.database, "t": table},
            )[2]
            if name not in _VOLATILE
        ]
        listed = ", ".join(f"`{c}`" for c in columns)
        busy = " WHERE NOT startsWith(context_id, {busy:String})" if "context_id" in columns else ""
        # identifiers from system.columns; the one value is bound
        sql = f"SELECT {listed} FROM {store.database}.{table} FINAL{busy} ORDER BY {listed}"  # noqa: S608
        rows = store.query(sql, {"busy": BUSY_CONTEXT_PREFIX})[2]
        h.update(f"{table} {len(rows)}\n".encode())
        for row in rows:
            h.update(repr(row).encode())
    return h.hexdigest()


def worker(requests_path: Path, out: Path, busy: BusyDay) -> None:
    """Write the phases' requests into a new store (after the `busy` day's unrelated calls and steps)
    and time each refresh; the result into `out`."""
    from tokenbook.collector.decode.spans import decode_protobuf
    from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
    from tokenbook.collector.storage.store import Store
    from tokenbook.genai.pricing.catalog import PriceCatalog

    phases: dict[str, Any] = pickle.loads(requests_path.read_bytes())
    keys = pipeline_keys((), "drop")
    builder = RowBuilder(PriceCatalog())
    statements: dict[str, list[float]] = defaultdict(list)
    result: dict[str, Any] = {"python": sys.executable}
    with tempfile.TemporaryDirectory(prefix="tokenbook-refresh-", dir=_scratch()) as tmp:
        store = Store.open(data_dir=Path(tmp) / "db", database="bench")
        try:
            store.migrate()
            for done in range(0, busy.rows, _BUSY_STATEMENT):
                end = phases["busy_end"] - timedelta(microseconds=done)
                rows = min(_BUSY_STATEMENT, busy.rows - done)
                write_busy_day(store, rows, end, days=busy.days, prefix=busy.prefix)
            _instrument(_statement_names(store.database), statements)
            gc.collect()
            gc.freeze()
            for phase in ("history", "small", "large"):
                statements.clear()
                cpu: list[float] = []
                wall: list[float] = []
                rows = 0
                for write in phases[phase]:
                    batches = [builder.build(decode_protobuf(b, keys).records) for b in write]
                    calls = [c for b in batches for c in b.calls]
                    steps = [s for b in batches for s in b.steps]
                    rows += len(calls) + len(steps)
                    store.write(calls, steps)
                    started, started_wall = time.process_time(), time.perf_counter()
                    store.refresh_aggregates()
                    cpu.append(1000 * (time.process_time() - started))
                    wall.append(1000 * (time.perf_counter() - started_wall))
                result[phase] = {
                    "passes": len(cpu),
                    "rows_per_pass": rows // max(len(cpu), 1),
                    "cpu_ms_per_pass_median": round(median(cpu), 2),
                    "cpu_ms_per_pass_mean": round(sum(cpu) / len(cpu), 2),
                    "wall_ms_per_pass_median": round(median(wall), 2),
                    "statements_per_pass": round(sum(len(v) for v in statements.values()) / len(cpu), 2),
                    "cpu_ms_per_pass_by_statement": {
                        name: round(sum(v) / len(cpu), 2)
                        for name, v in sorted(statements.items(), key=lambda kv: -sum(kv[1]))
                    },
                    "cpu_ms_per_statement": {
                        name: round(median(v), 2) for name, v in sorted(statements.items())
                    },
                }
            result["digest"] = _digest(store)
        finally:
            store.close()
    out.write_text(json.dumps(result), encoding="utf-8")


def _scratch() -> str | None:
    """/dev/shm when it is there (the engine writes many small files), else the default."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


class BusyDay(NamedTuple):
    """What `--busy-day`, `--busy-days` and `--busy-tenants` ask for."""

    rows: int
    days: int
    tenants: str  # "same": the spans' own tenants; "other": 50 others

    @property
    def prefix(self) -> str:
        """The names of its tenants, less their number."""
        return _SPANS_TENANTS if self.tenants == "same" else "busy-"

    def args(self) -> list[str]:
        """The options that ask for it."""
        return ["--busy-day", str(self.rows), "--busy-days", str(self.days), "--busy-tenants", self.tenants]


def _run_worker(python: str, requests_path: Path, busy: BusyDay) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tokenbook-refresh-out-") as tmp:
        out = Path(tmp) / "result.json"
        command = [python, str(Path(__file__).resolve()), "--worker", str(requests_path)]
        subprocess.run(
            [*command, "--out", str(out), *busy.args()],
            check=True,
            cwd=HERE.parent,
        )
        doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return doc


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per phase, the median over the runs of the per-pass CPU and of each statement's CPU per pass."""
    out: dict[str, Any] = {}
    for phase in ("small", "large"):
        per_statement: dict[str, list[float]] = defaultdict(list)
        for run in runs:
            for name, ms in run[phase]["cpu_ms_per_pass_by_statement"].items():
                per_statement[name].append(ms)
        out[phase] = {
            "cpu_ms_per_pass": round(median(r[phase]["cpu_ms_per_pass_median"] for r in runs), 2),
            "wall_ms_per_pass": round(median(r[phase]["wall_ms_per_pass_median"] for r in runs), 2),
            "statements_per_pass": runs[0][phase]["statements_per_pass"],
            "rows_per_pass": runs[0][phase]["rows_per_pass"],
            "cpu_ms_per_pass_by_statement": {
                name: round(median(v + [0.0] * (len(runs) - len(v))), 2)
                for name, v in sorted(per_statement.items(), key=lambda kv: -sum(kv[1]))
            },
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-python", help="another checkout's interpreter: alternate with it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history", type=int, default=400, help="agent runs per history write (10 writes)")
    parser.add_argument("--small", type=int, default=4, help="agent runs per small pass (5 spans each)")
    parser.add_argument("--small-passes", type=int, default=40)
    parser.add_argument("--large", type=int, default=2000, help="agent runs per large pass")
    parser.add_argument("--large-passes", type=int, default=4)
    parser.add_argument(
        "--busy-day",
        type=int,
        default=0,
        help="first write this many unrelated calls, and as many steps, over the day before the spans",
    )
    parser.add_argument("--busy-days", type=int, default=1, help="... over this many days")
    parser.add_argument(
        "--busy-tenants",
        choices=("other", "same"),
        default="other",
        help="... of 50 other tenants, or of the spans' own 50 (the hours the refresh recomputes hold them)",
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULT, help="the result file")
    args = parser.parse_args(argv if argv is not None else [])
    busy = BusyDay(args.busy_day, args.busy_days, args.busy_tenants)
    if args.worker is not None:
        worker(args.worker, args.out, busy)
        return {}
    versions = {"after": sys.executable}
    if args.base_python:
        versions = {"before": args.base_python, **versions}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in versions}
    with tempfile.TemporaryDirectory(prefix="tokenbook-refresh-requests-") as tmp:
        requests_path = Path(tmp) / "requests.pickle"
        phases = _requests(args.history, args.small, args.small_passes, args.large, args.large_passes)
        requests_path.write_bytes(pickle.dumps(phases))
        for i in range(args.rounds):
            for name, python in versions.items():
                run = _run_worker(python, requests_path, busy)
                run["load_average"] = os.getloadavg()[0]
                runs[name].append(run)
                print(
                    f"round {i + 1} {name}: small {run['small']['cpu_ms_per_pass_median']} ms, "
                    f"large {run['large']['cpu_ms_per_pass_median']} ms CPU per pass "
                    f"(load {run['load_average']:.1f})",
                    flush=True,
                )
    digests = {name: sorted({r["digest"] for r in rs}) for name, rs in runs.items()}
    command = (
        f".venv/bin/python bench/refresh_cost.py --rounds {args.rounds} --history {args.history} "
        f"--small {args.small} --small-passes {args.small_passes} --large {args.large} "
        f"--large-passes {args.large_passes}"
        + (" " + " ".join(busy.args()) if busy.rows else "")
        + (" --base-python BASE/.venv/bin/python" if args.base_python else "")
    )
    report: dict[str, Any] = {
        "command": command,
        "summary": {name: _summary(rs) for name, rs in runs.items()},
        "same_results": len({d for ds in digests.values() for d in ds}) == 1,
        "digests": digests,
        "runs": runs,
    }
    write_result(args.out, report, report["summary"])
    print(f"same results: {report['same_results']}")
    print(command)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
