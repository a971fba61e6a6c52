"""The `tokenbook` console script: argument parsing only; each command lives in its own module.

Command names and flags are a public contract (DESIGN.md "CLI"). Handlers are imported lazily so
that `tokenbook prices` does not pay for gRPC or ClickHouse imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

#: command -> "module:function"; the function takes the parsed namespace and returns an exit code.
_HANDLERS = {
    "collector": "tokenbook.cli.collector:cmd_collector",
    "demo": "tokenbook.cli.demo:cmd_demo",
    "report": "tokenbook.cli.reports:cmd_report",
    "sql": "tokenbook.cli.reports:cmd_sql",
    "explain": "tokenbook.cli.explain:cmd_explain",
    "prices": "tokenbook.cli.prices:cmd_prices",
    "reprice": "tokenbook.cli.reports:cmd_reprice",
    "migrate": "tokenbook.cli.migrate:cmd_migrate",
    "budgets": "tokenbook.cli.budgets:cmd_budgets",
}

_FORMATS = ("table", "json", "csv")


def _add_store_target(p: argparse.ArgumentParser) -> None:
    """Where to read from: the embedded store (or its running collector), an admin API, or a server."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--data-dir",
        default=None,
        help="embedded store directory (default ./tokenbook-data); read through the running "
        "collector's admin API when one owns it",
    )
    g.add_argument("--admin", default=None, metavar="HOST:PORT", help="a running collector's admin API")
    g.add_argument("--url", default=None, help="a ClickHouse server, e.g. http://user@host:8123")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenbook", description="Token spend ledger for LLM calls.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("collector", help="run the OTLP collector")
    p.add_argument("--config", default=None, help="YAML config file")
    p.add_argument(
        "--data-dir", default=None, help="embedded ClickHouse directory (default ./tokenbook-data)"
    )
    p.add_argument("--grpc", default=None, metavar="HOST:PORT", help="OTLP/gRPC (default 127.0.0.1:4317)")
    p.add_argument("--http", default=None, metavar="HOST:PORT", help="OTLP/HTTP (default 127.0.0.1:4318)")
    p.add_argument(
        "--admin", default=None, metavar="HOST:PORT", help="admin/query API (default 127.0.0.1:4319)"
    )

    p = sub.add_parser("demo", help="run a multi-tenant agent workload end to end and print its costs")
    p.add_argument("--data-dir", default=None, help="embedded store for the demo (default: a fresh temp dir)")

    p = sub.add_parser("report", help="cost tables")
    p.add_argument(
        "--by", default="tenant", choices=("tenant", "model", "project", "user", "feature", "context")
    )
    p.add_argument("--since", default="24h", help="a duration (30m, 24h, 7d) or an ISO timestamp")
    p.add_argument("--until", default=None, help="a duration ago or an ISO timestamp (default now)")
    p.add_argument("--tenant", default=None)
    p.add_argument("--context", default=None, help="one context's calls in time order")
    p.add_argument("--format", default="table", choices=_FORMATS)
    _add_store_target(p)

    p = sub.add_parser("explain", help="why each recorded span of a trace or context is billed or not")
    p.add_argument("id", metavar="TRACE_ID|CONTEXT_ID")
    p.add_argument("--tenant", default=None)
    p.add_argument("--format", default="table", choices=_FORMATS)
    _add_store_target(p)

    p = sub.add_parser("sql", help="run one SELECT over the store")
    p.add_argument("query")
    p.add_argument("--format", default="table", choices=_FORMATS)
    _add_store_target(p)

    p = sub.add_parser("prices", help="look up the price catalog; list unpriced models")
    p.add_argument("model", nargs="?", default=None)
    p.add_argument("--provider", default=None, help="provider (OTel or catalog name)")
    p.add_argument("--at", default=None, help="ISO timestamp the price must be in force at (default now)")
    p.add_argument("--overrides", default=None, help="YAML price overrides file")
    p.add_argument("--unpriced", action="store_true", help="models seen in the ledger without a price")
    p.add_argument(
        "--version", action="store_true", help="print the price catalog in use (the installed genai-prices)"
    )
    p.add_argument("--format", default="table", choices=_FORMATS)
    _add_store_target(p)

    p = sub.add_parser("reprice", help="recompute stored costs after a price change")
    p.add_argument("--since", required=True)
    p.add_argument("--until", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--overrides", default=None, help="YAML price overrides file")
    _add_store_target(p)

    p = sub.add_parser("migrate", help="apply the schema to a server, or print the rendered DDL")
    p.add_argument(
        "--cluster", default=None, metavar="NAME", help="render ON CLUSTER + Replicated* + Distributed"
    )
    p.add_argument("--print", dest="print_only", action="store_true", help="print the DDL, apply nothing")
    p.add_argument("--url", default=None, help="ClickHouse server URL (default: the embedded store)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--database", default="tokenbook")

    p = sub.add_parser("budgets", help="budget and quota states")
    p.add_argument("--tenant", default=None)
    p.add_argument("--format", default="table", choices=_FORMATS)
    _add_store_target(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = _HANDLERS[args.command].split(":")
    handler = getattr(importlib.import_module(module_name), func_name)
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
