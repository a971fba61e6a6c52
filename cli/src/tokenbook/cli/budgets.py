"""`tokenbook budgets [--tenant T] [--format table|json|csv]`: quota, budget and breaker states.

With a running collector (`--admin HOST:PORT`, or the one that owns `--data-dir`) it prints the live
counters of ``GET /v1/budgets`` (the gateway endpoint), one row per quota or budget subject. Without
one (`--url`, or an embedded directory nobody owns) it prints the last recorded crossing of each
subject whose window is still open, from `budget_events`, and says so on stderr.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenbook.cli.output import print_result
from tokenbook.cli.reports import is_store
from tokenbook.collector.query.api import AdminQueryClient
from tokenbook.collector.storage.location import DEFAULT_DATA_DIR
from tokenbook.collector.storage.owner import current_owner
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import Store, StoreError

__all__ = ["COLUMNS", "budget_rows", "cmd_budgets"]

_MAX_ROWS = 100_000
_REBUILD_WAIT_S = 120.0  # how long `--admin` waits for a starting collector's counters
COLUMNS = (
    "kind",
    "rule",
    "subject",
    "window",
    "state",
    "enforcement",
    "used_tokens",
    "limit_tokens",
    "remaining_tokens",
    "used_cost",
    "limit_cost",
    "remaining_cost",
    "currency",
    "reset_at",
)
_TYPES = (
    "String",
    "String",
    "String",
    "String",
    "String",
    "String",
    "UInt64",
    "Nullable(UInt64)",
    "Nullable(UInt64)",
    "Decimal(38, 12)",
    "Nullable(Decimal(38, 12))",
    "Nullable(Decimal(38, 12))",
    "String",
    "Nullable(DateTime64(6))",
)


def _decimal(v: str | None) -> Decimal | None:
    return None if v is None else Decimal(v)


def budget_rows(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The table rows of a ``GET /v1/budgets`` answer (quotas, budgets, then tripped breakers)."""
    rows: list[tuple[Any, ...]] = []
    for e in doc.get("quotas", []) + doc.get("budgets", []):
        rows.append(
            (
                e["kind"],
                e["rule"],
                ", ".join(f"{k}={v}" for k, v in e["subject"].items()),
                e["window"],
                e["state"],
                e["enforcement"],
                e["used"]["tokens"],
                e["limit"]["tokens"],
                e["remaining"]["tokens"],
                Decimal(e["used"]["cost"]),
                _decimal(e["limit"]["cost"]),
                _decimal(e["remaining"]["cost"]),
                e["currency"],
                None if e["reset_at"] is None else datetime.fromisoformat(e["reset_at"]),
            )
        )
    breakers = dict(doc.get("breakers") or {})
    tenant = doc.get("query", {}).get("tenant")
    if doc.get("breaker") and tenant is not None and doc["breaker"]["state"] == "tripped":
        breakers[tenant] = doc["breaker"]
    for tenant_id, b in sorted(breakers.items()):
        until = datetime.fromisoformat(b["until"]) if b["until"] else None
        row = (
            "breaker",
            "breaker",
            f"tenant={tenant_id}",
            "burn rate",
            "tripped",
            "hard",
            b["burn_tokens"] or 0,
        )
        rows.append((*row, None, None, Decimal(0), None, None, "", until))
    return rows


def _from_admin(address: str, tenant: str | None) -> list[tuple[Any, ...]]:
    """The rows of the collector's ``GET /v1/budgets``; while a starting collector rebuilds its
    counters (503 with ``Retry-After``) this waits for them, saying so on stderr, `_REBUILD_WAIT_S`
    at most."""

    def waiting(reason: str) -> None:
        print(f"{reason}: waiting", file=sys.stderr)

    client = AdminQueryClient(address, timeout_s=_REBUILD_WAIT_S, on_wait=waiting)
    return budget_rows(client.budget_states({"tenant": tenant} if tenant else {}))


def _from_events(store: Store, tenant: str | None) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
    sql, params = render_query("budgets/latest_states.sql", store.database), {"tenant": tenant or ""}
    return store.query_readonly(sql, params, max_rows=_MAX_ROWS)


def cmd_budgets(args: argparse.Namespace) -> int:
    """Print the states (see module docstring); exit 1 when the store or the collector cannot be read."""
    try:
        admin = args.admin
        data_dir = args.data_dir or DEFAULT_DATA_DIR
        if admin is None and args.url is None:
            admin = current_owner(data_dir)
            if admin is None and not Path(data_dir).is_dir():
                raise StoreError(
                    f"no embedded store in {data_dir}: start one with "
                    f"`tokenbook collector --data-dir {data_dir}`, or pass the store's --data-dir, "
                    "--url or --admin"
                )
            if admin is None and not is_store(Path(data_dir)):
                raise StoreError(
                    f"{data_dir} is not a tokenbook store: pass the --data-dir of `tokenbook collector` "
                    "(default ./tokenbook-data), or --url / --admin"
                )
        if admin is not None:
            rows = _from_admin(admin, args.tenant)
            columns, types = list(COLUMNS), list(_TYPES)
        else:
            with Store.open(args.url, data_dir=data_dir) as store:
                columns, types, rows = _from_events(store, args.tenant)
            print(
                "tokenbook budgets: no running collector; last recorded crossings from budget_events",
                file=sys.stderr,
            )
    except StoreError as exc:
        print(f"tokenbook budgets: {exc}", file=sys.stderr)
        return 1
    print_result(columns, types, rows, args.format, exact=args.exact)
    if not rows:
        who = f" for tenant {args.tenant!r}" if args.tenant else ""
        print(
            f"tokenbook budgets: no budget states{who}: quotas and budgets are set in the "
            "collector's config file (budgets:)",
            file=sys.stderr,
        )
    return 0
