"""What the budgets cost to read back from a big ledger: a restart's rebuild and the fleet's reconciliations.

A collector rebuilds its quota and budget counters from the ledger when it starts
(`BudgetEvaluator.rebuild`), and a fleet member reconciles them with it every ``budgets.fleet_sync``
seconds (`FleetSync.sync`). Both read every call of a quota's windows, so their cost grows with the
calls a window holds. This measures them on an embedded store that holds ``--rows`` calls, each
delivered twice (a re-delivery FINAL must count once), of 50 tenants, 97 users and 4 ``cost_center``
tags, in runs of 20 consecutive calls (a context each), spread over the ``--days`` before now, each
ingested a second after its start (`tests.cli.seed_store.write_busy_day`), with three rules:

* ``monthly``: a ``calendar_month`` quota per tenant;
* ``daily-user``: a ``1d`` quota per tenant and user, of the calls of one ``tags.cost_center``;
* ``run``: a budget per context.

Timed, in process CPU (the engine runs in the process) and wall seconds:

* ``rebuild``: a restart's rebuild (the previous and current windows of each quota, and every context
  active within ``budgets.context_ttl``);
* ``first_sync``: a fleet member's first reconciliation (every subject: each tenant of the quotas'
  previous and current windows, each context with a call ingested within ``budgets.context_ttl``);
* ``active_sync``: a reconciliation after one new call of every tenant (every tenant active: the
  current windows of all of them);
* ``evicted_return``: with ``budgets.max_subjects`` at 100, after a rebuild (which evicts most
  counters), a new call of a context idle for ``--days``: the rebuild of the counters it re-creates
  from the ledger (its context's budget and its tenant's monthly quota).

With ``--base-python`` (another checkout's interpreter, `make install` run there) each round runs the
worker for the base, then for this checkout, on the same store (seeded once, by this checkout), so a
slow phase of a shared machine hits both alike, on a clock stopped at the seeding time (the same
windows and active contexts in every run). Every worker ends with a digest of the counters it
read: equal digests mean the same counters.
Run: ``.venv/bin/python bench/budget_reads.py [--base-python BASE/.venv/bin/python] [--rows 1000000]
[--days 20] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.result_file import write_result  # noqa: E402
from tests.cli.seed_store import write_busy_day  # noqa: E402
from tests.collector.budgets.budget_rows import call  # noqa: E402
from tokenbook.collector.budgets import parse_budgets  # noqa: E402
from tokenbook.collector.budgets.evaluator import BudgetEvaluator  # noqa: E402
from tokenbook.collector.budgets.fleet import FleetSync  # noqa: E402
from tokenbook.collector.storage.ledger import CallRow  # noqa: E402
from tokenbook.collector.storage.store import Store  # noqa: E402

RESULT = HERE / "results" / "budget_reads.json"
TENANTS = 50
RUN_CALLS = 20  # consecutive calls of one context
EVICTING = 100  # budgets.max_subjects of the evicted_return case
RULES: dict[str, Any] = {
    "quotas": [
        {"name": "monthly", "window": "calendar_month", "limit": {"tokens": 10**15}},
        {
            "name": "daily-user",
            "window": "1d",
            "limit": {"tokens": 10**15},
            "per": ["tenant", "user"],
            "match": {"tags.cost_center": "cc-1"},
        },
    ],
    "budgets": [{"name": "run", "limit": {"tokens": 10**15}}],
}


def _new_calls(now: datetime) -> list[CallRow]:
    """One call of every tenant, the same spans every time (a re-delivery after the first)."""
    return [
        call(now, f"{k:016x}", trace=f"{k:032x}", tenant=f"busy-{k}", context=f"new-{k}", ingested_at=now)
        for k in range(TENANTS)
    ]


def _idle_context_call(now: datetime, rows: int) -> CallRow:
    """A new call of the oldest context (idle for `--days`), on a tenant whose counters were evicted."""
    run = rows // RUN_CALLS - 1
    return call(
        now, "e" * 16, trace="e" * 32, tenant=f"busy-{run % TENANTS}", context=f"c-{run}", ingested_at=now
    )


def _timed(action: Callable[[], object]) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    action()
    return {"cpu_s": round(time.process_time() - cpu, 3), "wall_s": round(time.perf_counter() - wall, 3)}


def _digest(evaluator: BudgetEvaluator) -> str:
    doc = evaluator.states(limit=10**7)
    counters = sorted(
        (e["rule"], sorted(e["subject"].items()), e["used"]["tokens"], str(e["used"]["cost"]))
        for e in doc["quotas"] + doc["budgets"]
    )
    return hashlib.sha256(json.dumps(counters).encode()).hexdigest()[:16]


def worker(data_dir: Path, out: Path, now: datetime, rows: int) -> None:
    """Time the four reads on the store in `data_dir` (of `rows` calls), on a clock stopped at `now`
    (every worker reads the same windows and active contexts), and write the figures to `out`."""
    cfg, problems = parse_budgets(RULES)
    small, more_problems = parse_budgets({**RULES, "max_subjects": EVICTING})
    assert not problems and not more_problems, problems + more_problems
    clock = now.timestamp
    with Store.open(data_dir=str(data_dir)) as store:
        store.write(_new_calls(now), [])  # what the previous worker wrote: the same counters
        restarted = BudgetEvaluator(cfg, publish=lambda _: None, clock=clock)
        rebuild = _timed(lambda: restarted.rebuild(store))
        fleet = BudgetEvaluator(cfg, publish=lambda _: None, clock=clock, fleet=True)
        sync = FleetSync(fleet, 2.0, clock=clock)
        first = _timed(lambda: sync.sync(store))
        first_counters = sync.last.counters if sync.last is not None else 0
        store.write(_new_calls(now), [])
        active = _timed(lambda: sync.sync(store))
        counters = sync.last.counters if sync.last is not None else 0
        evicting = BudgetEvaluator(small, publish=lambda _: None, clock=clock)
        evicting.rebuild(store)
        evicting.observe([_idle_context_call(now, rows)])
        rebuilt: list[int] = []
        returned = _timed(lambda: rebuilt.append(evicting.hydrate_pending(store)))
        doc = {
            "rebuild": rebuild,
            "first_sync": first,
            "first_sync_counters": first_counters,
            "active_sync": active,
            "active_sync_counters": counters,
            "evicted_return": returned,
            "evicted_return_counters": rebuilt[0],
            "rebuild_digest": _digest(restarted),
        }
    out.write_text(json.dumps(doc), encoding="utf-8")


def _seed(data_dir: Path, rows: int, days: int, now: datetime) -> None:
    with Store.open(data_dir=str(data_dir)) as store:
        store.migrate()
        end = now - timedelta(minutes=5)
        for _ in range(2):  # the second time as a re-delivery of every call
            write_busy_day(
                store,
                rows,
                end,
                tenants=TENANTS,
                days=days,
                ingested=timedelta(seconds=1),
                calls_per_context=RUN_CALLS,
            )


def _run_worker(python: str, data_dir: Path, now: datetime, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tokenbook-budget-reads-") as tmp:
        out = Path(tmp) / "result.json"
        command = [python, str(Path(__file__).resolve()), "--worker", str(data_dir), "--out", str(out)]
        command += ["--now", now.isoformat(), "--rows", str(rows)]
        subprocess.run(command, check=True, cwd=HERE.parent)
        doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return doc


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-python", help="another checkout's interpreter: alternate with it")
    parser.add_argument("--rows", type=int, default=1_000_000, help="calls, each written twice")
    parser.add_argument("--days", type=int, default=20, help="the days before now they are spread over")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--now", type=datetime.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULT, help="the result file")
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args.worker, args.out, args.now, args.rows)
        return {}
    versions = {"after": sys.executable}
    if args.base_python:
        versions = {"before": args.base_python, **versions}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in versions}
    shm = Path("/dev/shm")
    tmp = tempfile.mkdtemp(prefix="tokenbook-budget-reads-", dir=shm if shm.is_dir() else None)
    try:
        data_dir = Path(tmp) / "store"
        started, now = time.perf_counter(), datetime.now(UTC)
        _seed(data_dir, args.rows, args.days, now)
        print(f"seeded {2 * args.rows} rows in {time.perf_counter() - started:.1f} s", flush=True)
        for i in range(args.rounds):
            for name, python in versions.items():
                run = _run_worker(python, data_dir, now, args.rows)
                run["load_average"] = os.getloadavg()[0]
                runs[name].append(run)
                print(f"round {i + 1} {name}: {json.dumps(run)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        name: {
            phase: {
                unit: round(statistics.median(r[phase][unit] for r in rs), 3) for unit in ("cpu_s", "wall_s")
            }
            for phase in ("rebuild", "first_sync", "active_sync", "evicted_return")
        }
        for name, rs in runs.items()
    }
    digests = {name: sorted({r["rebuild_digest"] for r in rs}) for name, rs in runs.items()}
    command = (
        f".venv/bin/python bench/budget_reads.py --rows {args.rows} --days {args.days} --rounds {args.rounds}"
        + (" --base-python BASE/.venv/bin/python" if args.base_python else "")
    )
    report: dict[str, Any] = {
        "command": command,
        "ledger": {"calls": args.rows, "rows": 2 * args.rows, "days": args.days, "tenants": TENANTS},
        "rules": RULES,
        "summary": summary,
        "same_counters": len({d for ds in digests.values() for d in ds}) == 1,
        "digests": digests,
        "runs": runs,
    }
    write_result(args.out, report, summary)
    print(f"same counters: {report['same_counters']}")
    print(command)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
