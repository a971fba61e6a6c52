"""Query latency on a synthetic ledger: the documented questions, before/after paths, and `tokenbook report`.

`python bench/query_latency.py [--rows 10000000] [--repeats 5] [--jit] [--out FILE]` (default
`bench/results/query_latency.json`)

Builds an embedded store in a temp folder with `--rows` billed-call candidates (1,000 tenants, rows/10
contexts, 90 days, 8 models, 2% rows billed by another layer) directly on the engine
(``INSERT ... SELECT FROM numbers()``), fills the aggregates with the collector's own refresh SQL, then
times each query `--repeats` times (median, ms) in the same process. Each question is timed on the
path readers had before (``*_before``: FINAL across partitions, the ledger or the tenant-first
roll-up) and on the current one, so the ratio is measured within one run (the report's partial hours
also without the ledger's time-ordered projection: ``report_tenant_30d_sql_without_projection``).
Finally it starts a collector on the store and times ``tokenbook report --by tenant --since 30d`` end
to end (a new process reading through the collector's admin API), and the report SQL of the previous
release. The store's aggregates are complete (recomputed from the whole ledger), so the collector is
started with a refresh watermark of now, as a clean stop leaves it: it does not recompute the ledger
beside the timed reports (``--no-watermark`` starts it without one, as the first start after an
upgrade).
"""

# ruff: noqa: S608 - benchmark SQL built from its own constants
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from tokenbook.collector.storage.config import EngineConfig
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import Store

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULT = HERE / "results" / "query_latency.json"
WATERMARK = "refresh-watermark.json"  # the collector's refresh watermark, in the data directory
TENANTS = 1000
CALLS_PER_CONTEXT = 10
MODELS = "['gpt-4o', 'gpt-4o-mini', 'o3', 'claude-sonnet-4', 'claude-haiku-4', 'gemini-2.5-pro', 'gemini-2.5-flash', 'llama-4']"  # noqa: E501

_GENERATE = """
INSERT INTO {db}.llm_calls (
    timestamp, trace_id, span_id, parent_span_id, context_id, workflow_name, tenant_id, user_id,
    project_id, team_id, feature, service_name, provider, model, operation, input_tokens,
    output_tokens, cache_read_tokens, input_cost, output_cost, cache_read_cost, cache_write_cost,
    total_cost, currency, price_status, status, ingested_at, version, kind
)
SELECT
    ts, trace_id, span_id, '', context_id, 'chat', tenant_id, concat('user-', toString(ctx % 50000)),
    concat('project-', toString(ctx % 37)), concat('team-', toString(ctx % 11)),
    ['search', 'chat', 'summarize', 'agent'][1 + ctx % 4], 'app', provider, model, 'chat',
    input_tokens, output_tokens, cache_read_tokens, input_cost, output_cost,
    toDecimal64(0, 12), toDecimal64(0, 12), input_cost + output_cost, 'USD',
    if(number % 50 = 7, 'duplicate_layer', 'priced'), if(number % 97 = 0, 'error', 'ok'),
    {ingested}, 1, 'model'
FROM
(
    SELECT
        number,
        intDiv(number, {per_context}) AS ctx,
        {start_us} + toInt64(intDiv(toUInt128(ctx) * {span_us}, {contexts}))
            + (number % {per_context}) * 2000000 AS ts_us,
        fromUnixTimestamp64Micro(toInt64(ts_us), 'UTC') AS ts,
        lower(concat(hex(cityHash64(ctx, 1)), hex(cityHash64(ctx, 2)))) AS trace_id,
        lower(hex(cityHash64(number, 3))) AS span_id,
        concat('ctx-', toString(ctx)) AS context_id,
        concat('tenant-', leftPad(toString(ctx % {tenants}), 4, '0')) AS tenant_id,
        {models}[1 + cityHash64(number, 4) % 8] AS model,
        multiIf(startsWith(model, 'gpt') OR model = 'o3', 'openai', startsWith(model, 'claude'), 'anthropic',
                startsWith(model, 'gemini'), 'google', 'meta') AS provider,
        100 + cityHash64(number, 5) % 4000 AS input_tokens,
        10 + cityHash64(number, 6) % 800 AS output_tokens,
        if(number % 3 = 0, intDiv(input_tokens, 2), 0) AS cache_read_tokens,
        toDecimal64(input_tokens * 0.0000025, 12) AS input_cost,
        toDecimal64(output_tokens * 0.00001, 12) AS output_cost
    FROM numbers({rows})
)
SETTINGS max_partitions_per_insert_block = 0, max_insert_threads = 2
"""


def build_ledger(
    store: Store, rows: int, *, days: float = 90.0, ingested: str = "ts + toIntervalSecond(1)"
) -> float:
    """Fill the store's ledger with `rows` synthetic calls over the last `days` (ingested_at: SQL over
    ``ts``), then its aggregates; returns the seconds it took."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    start_us = int((now - timedelta(days=days)).timestamp() * 1_000_000)
    contexts = max(rows // CALLS_PER_CONTEXT, 1)
    span_us = int(days * 86400 * 1_000_000) - CALLS_PER_CONTEXT * 2_000_000
    store.command(
        _GENERATE.format(
            db=store.database,
            rows=rows,
            per_context=CALLS_PER_CONTEXT,
            start_us=start_us,
            span_us=span_us,
            contexts=contexts,
            tenants=TENANTS,
            models=MODELS,
            ingested=ingested,
        )
    )
    fill_aggregates(store)
    return time.perf_counter() - started


def fill_aggregates(store: Store) -> None:
    """Recompute every aggregate with the refresh SQL, its key filters removed (all keys)."""
    keys = "PREWHERE tenant_id IN {tenants:Array(String)} AND context_id IN {contexts:Array(String)}"
    ctx = render_query("refresh_context_costs.sql", store.database)
    if keys not in ctx:
        raise RuntimeError("refresh_context_costs.sql no longer filters by tenants and contexts as expected")
    store.command(ctx.replace(keys, "PREWHERE 1") + "\nSETTINGS max_partitions_per_insert_block = 0")
    hourly = render_query("refresh_cost_hourly.sql", store.database)
    where = hourly[hourly.index("    PREWHERE timestamp >=") : hourly.index("    ORDER BY version DESC")]
    store.command(hourly.replace(where, "") + "\nSETTINGS max_partitions_per_insert_block = 0")
    store.rebuild_rollups()
    for table in ("llm_calls", "context_costs", "cost_hourly", "tenant_hourly", "model_hourly"):
        store.command(f"OPTIMIZE TABLE {store.database}.{table} FINAL")


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `fn` over `repeats` runs (after one warm-up run), in ms."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 1)


def _queries(day: str, month_start: str, month_end: str, context: str, tenant: str) -> dict[str, str]:
    billed = "price_status NOT IN ('duplicate_layer', 'wrapper')"
    return {
        "context_by_id_before": f"SELECT * FROM context_costs FINAL WHERE context_id = '{context}' "
        "SETTINGS use_skip_indexes = 0",
        "context_by_id": f"SELECT * FROM v_context_costs WHERE context_id = '{context}'",
        "context_with_tenant": f"SELECT * FROM v_context_costs WHERE tenant_id = '{tenant}' "
        f"AND context_id = '{context}'",
        "top10_tenants_day_ledger_before": "SELECT tenant_id, sum(total_cost) AS c FROM llm_calls FINAL "
        f"WHERE {billed} AND toDate(timestamp) = '{day}' GROUP BY tenant_id ORDER BY c DESC LIMIT 10",
        "top10_tenants_day_cost_hourly_before": "SELECT tenant_id, sum(total_cost) AS c FROM cost_hourly "
        f"FINAL WHERE toDate(hour) = '{day}' GROUP BY tenant_id ORDER BY c DESC LIMIT 10",
        "top10_tenants_day": "SELECT tenant_id, sum(total_cost) AS c FROM v_tenant_daily "
        f"WHERE day = '{day}' GROUP BY tenant_id ORDER BY c DESC LIMIT 10",
        "cost_per_model_month_before": "SELECT model, sum(total_cost) FROM llm_calls FINAL "
        f"WHERE {billed} AND timestamp >= '{month_start}' AND timestamp < '{month_end}' GROUP BY model",
        "cost_per_model_month": "SELECT model, sum(total_cost) FROM v_model_daily "
        f"WHERE day >= '{month_start}' AND day < '{month_end}' GROUP BY model",
        "v_calls_day_before": f"SELECT count(), sum(total_cost) FROM llm_calls FINAL WHERE {billed} "
        f"AND toDate(timestamp) = '{day}'",
        "v_calls_day": f"SELECT count(), sum(total_cost) FROM v_calls WHERE toDate(timestamp) = '{day}'",
    }


def _report_sql_before(store: Store, since: datetime, until: datetime) -> Callable[[], Any]:
    """The previous release's `report --by tenant` query: v_calls as it was (FINAL across partitions)."""
    sql = render_query("report_by.sql", store.database).replace(
        "FROM v_calls",
        "FROM (SELECT * FROM llm_calls FINAL WHERE price_status NOT IN ('duplicate_layer', 'wrapper'))",
    )
    params = {"since": since, "until": until, "tenant": "", "by": "tenant", "by_day": 0}
    return lambda: store.query(sql, params)


def _cli_report(data_dir: Path, repeats: int, *, watermark: bool = True) -> dict[str, Any]:
    """`tokenbook report --by tenant --since 30d` as a new process, through a running collector
    (started with a refresh watermark of now when `watermark`: the aggregates are complete)."""
    sys.path.insert(0, str(REPO))
    from tests.collector.collector_process import CollectorProcess

    if watermark:
        now = datetime.now(UTC).isoformat()
        (data_dir / WATERMARK).write_text(json.dumps({"refreshed_until": now}), encoding="utf-8")
    collector = CollectorProcess(data_dir)
    started = time.perf_counter()
    collector.start(timeout=600)
    ready_s = time.perf_counter() - started
    command = [sys.executable, "-m", "tokenbook", "report", "--by", "tenant", "--since", "30d",
               "--data-dir", str(data_dir), "--format", "csv"]  # fmt: skip
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    try:

        def run() -> None:
            out = subprocess.run(command, capture_output=True, env=env, check=True, timeout=120)
            assert out.stdout.count(b"\n") > TENANTS // 2, out.stdout[:200]

        end_to_end = median_ms(run, repeats)
        help_ms = median_ms(
            lambda: subprocess.run([*command[:4], "--help"], capture_output=True, check=True), repeats
        )
    finally:
        collector.stop()
    return {
        "collector_ready_s": round(ready_s, 2),
        "report_tenant_30d_cli_ms": end_to_end,
        "report_help_ms": help_ms,
    }


def main() -> dict[str, Any]:
    """Build the ledger, time the queries, write the JSON result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end `tokenbook report` run")
    ap.add_argument("--no-watermark", action="store_true", help="start the collector without a watermark")
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument(
        "--store",
        type=Path,
        help="keep the built store in this directory and reuse it when it is there (to time two "
        "versions on one ledger: its windows are relative to now, so reuse it the same day)",
    )
    ap.add_argument(
        "--jit",
        action="store_true",
        help="the engine compiles expressions to machine code (`storage.clickhouse.engine.jit`)",
    )
    args = ap.parse_args()
    build_s: float | None = None
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tb-query-") as tmp:
        data_dir = args.store or Path(tmp) / "store"
        store = Store.open(data_dir=data_dir, engine=EngineConfig(jit=args.jit))
        store.migrate()
        if not (data_dir / "built").exists():
            build_s = build_ledger(store, args.rows)
            (data_dir / "built").write_text(str(args.rows), encoding="ascii")
        _, _, sizes = store.query(
            "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active "
            "AND database = 'tokenbook' GROUP BY table ORDER BY table"
        )
        now = datetime.now(UTC)
        day = (now - timedelta(days=10)).date().isoformat()
        month_start = (now - timedelta(days=45)).replace(day=1).date()
        month_end = (month_start + timedelta(days=32)).replace(day=1)
        _, _, ctx = store.query(
            "SELECT tenant_id, context_id FROM context_costs LIMIT 1 OFFSET {offset:UInt64}",
            {"offset": args.rows // CALLS_PER_CONTEXT // 2},
        )
        tenant, context = ctx[0]
        results: dict[str, Any] = {}
        for name, sql in _queries(day, str(month_start), str(month_end), context, tenant).items():
            results[name] = median_ms(partial(store.query, sql), args.repeats)
            print(f"{name}: {results[name]} ms", flush=True)
        since, until = now - timedelta(days=30), now
        results["report_tenant_30d_sql_before"] = median_ms(
            _report_sql_before(store, since, until), args.repeats
        )
        from tokenbook.cli.reports import rollup_window

        whole_since, whole_until = rollup_window(since, until)
        sql = render_query("report_rollup.sql", store.database)
        params = {"since": since, "until": until, "tenant": "", "by": "tenant", "source": "tenant",
                  "whole_since": whole_since, "whole_until": whole_until, "by_day": 0}  # fmt: skip
        results["report_tenant_30d_sql"] = median_ms(lambda: store.query_readonly(sql, params), args.repeats)
        # The same query with the ledger edges read from the ledger's month partitions (no projection).
        results["report_tenant_30d_sql_without_projection"] = median_ms(
            lambda: store.query(sql, params, settings={"optimize_use_projections": 0}), args.repeats
        )
        before = store.query(render_query("report_by.sql", store.database), {**params})[2]
        after = store.query_readonly(sql, params)[2]
        results["report_rollup_equals_ledger"] = sorted(before) == sorted(after)
        print(results, flush=True)
        store.close()
        if not args.no_cli:
            results |= _cli_report(data_dir, args.repeats, watermark=not args.no_watermark)
    doc = {
        "command": f"python bench/query_latency.py --rows {args.rows} --repeats {args.repeats}"
        + (" --no-watermark" if args.no_watermark else "")
        + (" --no-cli" if args.no_cli else "")
        + (" --jit" if args.jit else ""),
        "load_avg_at_start": [round(x, 2) for x in load_at_start],
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "rows": args.rows,
        "jit": args.jit,
        "tenants": TENANTS,
        "contexts": args.rows // CALLS_PER_CONTEXT,
        "build_s": round(build_s, 1) if build_s is not None else None,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "tables": {t: {"rows": int(r), "bytes": int(b)} for t, r, b in sizes},
        "median_ms": results,
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    print(json.dumps(doc, indent=2, default=str))
    return doc


if __name__ == "__main__":
    main()
