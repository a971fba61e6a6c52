"""Deterministic ledger rows for storage and CLI tests (and a busy day of unrelated ones, written by
the engine), and a script that seeds an embedded store.

`python tests/cli/seed_store.py DIR [BASE]` migrates the store in DIR, writes `make_calls()` and
`make_steps()` twice (the second time as a re-delivery) and refreshes the aggregates. BASE is the
ISO time of the first call (default: five whole hours ago).
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tokenbook.collector.storage.ledger import CallRow, StepRow

if TYPE_CHECKING:
    from tokenbook.collector.storage.store import Store

TENANTS = ("acme", "globex", "initech")
MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("acme-labs", "mystery-model"))
UNPRICED_MODEL = "mystery-model"
#: The contexts of `write_busy_day`'s calls and steps start with this (``c-N``).
BUSY_CONTEXT_PREFIX = "c-"


def base_time() -> datetime:
    """Five whole hours ago: seeded calls fall in the last 24 hours, over a few hour buckets."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)


def _money(rng: random.Random) -> Decimal:
    return Decimal(rng.randrange(1, 10**9)).scaleb(-12)


def make_calls(n: int = 240, *, seed: int = 7, base: datetime | None = None) -> list[CallRow]:
    """`n` calls over 3 tenants x 4 contexts x 3 models, spread over 4 hours; mystery-model is unpriced."""
    rng = random.Random(seed)
    start = base or base_time()
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        tenant = TENANTS[i % len(TENANTS)]
        context = f"{tenant}-ctx-{(i // 3) % 4}"
        provider, model = MODELS[rng.randrange(len(MODELS))]
        input_tokens = rng.randrange(100, 5000)
        cache_read = rng.randrange(0, input_tokens // 2)
        output_tokens = rng.randrange(10, 800)
        if model == UNPRICED_MODEL:
            costs: list[Decimal | None] = [None, None, None, None]
            total, status = None, "unpriced"
        else:
            costs = [_money(rng), _money(rng), _money(rng), Decimal(0)]
            total, status = sum((c for c in costs if c is not None), Decimal(0)), "priced"
        rows.append(
            CallRow(
                timestamp=start + timedelta(seconds=i * 61),  # 240 calls span ~4 hours
                trace_id=f"{i // 6:032x}",
                span_id=f"{i:016x}",
                parent_span_id="",
                context_id=context,
                workflow_name=f"wf-{tenant}",
                workflow_id=f"{i // 6:016x}",
                tenant_id=tenant,
                user_id=f"user-{i % 5}",
                project_id=("support", "search")[i % 2],
                team_id="core",
                feature=("chat", "summarize", "classify")[i % 3],
                service_name="agent",
                tags={"cost_center": f"cc-{i % 2}"},
                provider=provider,
                model=model,
                operation="chat",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cache_read,
                cache_write_tokens=0,
                reasoning_tokens=rng.randrange(0, output_tokens),
                input_cost=costs[0],
                output_cost=costs[1],
                cache_read_cost=costs[2],
                cache_write_cost=costs[3],
                total_cost=total,
                billed_input_cost=costs[0],  # no price book: billed at the list price
                billed_output_cost=costs[1],
                billed_cache_read_cost=costs[2],
                billed_cache_write_cost=costs[3],
                billed_cost=total,
                currency="USD",
                price_status=status,
                price_source="test" if status == "priced" else "unknown model",
                client_cost=None,
                usage_issue="",
                attempt=1 if i % 17 == 0 else 0,
                status="error" if i % 23 == 0 else "ok",
                error_type="Timeout" if i % 23 == 0 else "",
                duration_ms=float(rng.randrange(100, 3000)),
                ingested_at=now,
                version=1,
            )
        )
        if tenant == "acme":  # measured prompts, a known context window, latency and a policy path
            rows[-1] = _anatomy(rows[-1], i)
    return rows


def _anatomy(row: CallRow, i: int) -> CallRow:
    """`row` with prompt parts summing to its input, saturation of a 128k window, latency, a policy path."""
    n = row.input_tokens
    system, user, tool_result = min(200, n // 4), 50, n // 4
    return row._replace(
        prompt_system_tokens=system,
        prompt_history_tokens=n - system - user - tool_result,
        prompt_retrieved_tokens=0,
        prompt_tool_result_tokens=tool_result,
        prompt_user_tokens=user,
        prompt_tool_definition_tokens=0,
        prompt_overhead_tokens=0,
        prompt_estimated=True,
        context_window=128_000,
        context_saturation=round(n / 128_000, 6),
        time_to_first_token_ms=80.0 + i,
        output_tokens_per_second=50.0,
        policy_path=("guard/pii/allow", "route/cheap")[i % 2],
    )


def make_steps(calls: list[CallRow]) -> list[StepRow]:
    """One tool step per fourth call (every 4th step failing) and an outcome per context."""
    now = datetime.now(UTC)
    steps = [
        StepRow(
            c.timestamp + timedelta(milliseconds=5),
            c.trace_id,
            f"{int(c.span_id, 16) + 10**6:016x}",
            c.span_id,
            c.context_id,
            c.tenant_id,
            "tool",
            "search",
            "execute_tool",
            "error" if i % 4 == 0 else "ok",
            12.0,
            "",
            now,
            1,
        )
        for i, c in enumerate(calls[::4])
    ]
    last = {(c.tenant_id, c.context_id): c for c in calls}
    steps += [
        StepRow(
            c.timestamp + timedelta(seconds=1),
            c.trace_id,
            f"outcome-{c.context_id}",
            "",
            c.context_id,
            c.tenant_id,
            "outcome",
            "resolve",
            "",
            "ok",
            0.0,
            "resolved",
            now,
            1,
        )
        for c in last.values()
    ]
    return steps


def write_busy_day(
    store: Store,
    rows: int,
    end: datetime,
    *,
    tenants: int = 50,
    days: int = 1,
    prefix: str = "busy-",
    ingested: datetime | timedelta | None = None,
    calls_per_context: int = 0,
) -> None:
    """`rows` unrelated calls, and as many steps, of `tenants` tenants (`prefix` and a number) spread
    over the `days` before `end`, written by the engine (each in its own trace, a call and a step per
    trace; their contexts are `BUSY_CONTEXT_PREFIX` and a number, their users ``user-N`` of 97 and
    their ``cost_center`` tags ``cc-N`` of 4), ingested now, at `ingested` (a time), or `ingested` after
    their start (a duration). The tenants take the calls in turn, each in one of 997 contexts that
    last the whole span; with `calls_per_context`, each run of that many consecutive calls is one
    context of one tenant instead (a short agent run)."""
    db = store.database
    trace, span = "lower(hex(cityHash64(number, 1)))", "lower(hex(cityHash64(number, 2)))"
    spread = f"toIntervalMicrosecond(intDiv(number * {days * 86_400_000_000}, {rows}))"
    run = f"intDiv(number, {calls_per_context})" if calls_per_context else "number"
    context = run if calls_per_context else "number % 997"
    where = (
        f"{{end:DateTime64(6, 'UTC')}} - {spread},"
        f" {trace}, concat({{context:String}}, toString({context})),"
        f" concat({{prefix:String}}, toString({run} % {tenants}))"
    )
    params: dict[str, Any] = {"end": end, "prefix": prefix, "context": BUSY_CONTEXT_PREFIX}
    at = "now64(6)"
    if isinstance(ingested, datetime):
        params["ingested"], at = ingested, "{ingested:DateTime64(6, 'UTC')}"
    elif ingested is not None:
        params["after"] = int(ingested / timedelta(microseconds=1))
        at = f"{{end:DateTime64(6, 'UTC')}} - {spread} + toIntervalMicrosecond({{after:Int64}})"
    store.command(
        f"INSERT INTO {db}.llm_calls (timestamp, trace_id, context_id, tenant_id, span_id, user_id, tags,"
        " model, input_tokens, output_tokens, price_status, quote_status, kind, service_instance,"
        f" duration_ms, ingested_at, version) SELECT {where}, {span}, concat('user-', toString(number % 97)),"
        " map('cost_center', concat('cc-', toString(number % 4))), 'gpt-4o', 1000 + number % 5000, 100,"
        f" 'priced', 'priced', 'model', 'svc-busy', 900, {at}, 1 FROM numbers({rows})",
        params,
    )
    store.command(
        f"INSERT INTO {db}.context_steps (timestamp, trace_id, context_id, tenant_id, span_id,"
        " parent_span_id, kind, name, status, ingested_at, version)"
        f" SELECT {where}, lower(hex(cityHash64(number, 3))), {span}, 'wrapper', 'agent', 'ok',"
        f" {at}, 1 FROM numbers({rows})",
        params,
    )


def reads_at_most(rows: int) -> dict[str, Any]:
    """Engine settings under which a statement fails once it reads more than `rows` rows of a table
    (the engine counts the whole granules it reads)."""
    return {"max_rows_to_read": rows, "read_overflow_mode": "throw"}


def main(data_dir: str, base: str | None = None) -> None:
    from tokenbook.collector.storage.store import Store

    calls = make_calls(base=datetime.fromisoformat(base) if base else None)
    steps = make_steps(calls)
    with Store.open(data_dir=data_dir) as store:
        store.migrate()
        store.write(calls, steps)
        store.write(calls[:100], steps[:10])  # a re-delivery: must not change any total
        store.refresh_aggregates()


if __name__ == "__main__":
    main(*sys.argv[1:3])
