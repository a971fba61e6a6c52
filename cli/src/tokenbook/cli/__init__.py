"""The `tokenbook` console script: argument parsing only; each command lives in its own module.

Command names and flags are a public contract (docs/reference/cli.md): scripts depend on them.
Handlers are imported lazily so that `tokenbook prices` does not pay for gRPC or ClickHouse imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "host_port", "main", "parse_args"]

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
    "quarantine": "tokenbook.cli.quarantine:cmd_quarantine",
    "export": "tokenbook.cli.export:cmd_export",
    "reconcile": "tokenbook.cli.reconcile:cmd_reconcile",
    "tenants": "tokenbook.cli.tenants:cmd_tenants",
}

_FORMATS = ("table", "json", "csv")
_DIMENSIONS = ("tenant", "model", "project", "team", "user", "feature", "policy", "context", "prompt-part")
_FORMAT_HELP = (
    "table (aligned for a terminal), json (one object per line, exact) or csv (exact, with a header) "
    "(default: table)"
)
#: A handler's module is missing: which install provides it.
_EXTRA_HINT = "this command needs the collector extra: pip install 'tokenbook[collector]'"


def host_port(value: str) -> str:
    """argparse type of HOST:PORT options: a host (or [IPv6]) and a port number 1-65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:4319)")
    return value


def _add_format(p: argparse.ArgumentParser, *, money: bool = True) -> None:
    p.add_argument("--format", default="table", choices=_FORMATS, help=_FORMAT_HELP)
    if money:
        p.add_argument(
            "--exact",
            action="store_true",
            help="show money in tables with every stored digit (default: 6 decimals, rounded "
            "half-even; json and csv are always exact)",
        )


def _add_currency(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--currency",
        default=None,
        metavar="CODE",
        help="convert money into this currency at each day's rate, e.g. EUR (default: the ledger's)",
    )
    p.add_argument(
        "--exchange-rates",
        default=None,
        metavar="FILE",
        help="YAML dated exchange rates, with their source; needed by --currency (default: none)",
    )


def _add_store_target(p: argparse.ArgumentParser) -> None:
    """Where to read from: the embedded store (or its running collector), an admin API, or a server."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="embedded store directory, read through the admin API of the collector that owns it "
        "when one is running (default: ./tokenbook-data)",
    )
    g.add_argument(
        "--admin",
        default=None,
        type=host_port,
        metavar="HOST:PORT",
        help="a running collector's admin API, e.g. 127.0.0.1:4319 (default: not used)",
    )
    g.add_argument(
        "--url",
        default=None,
        metavar="URL",
        help="a ClickHouse server, e.g. http://user@host:8123 (default: not used)",
    )


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``tokenbook`` parser and each command's subparser (handlers load lazily)."""
    parser = argparse.ArgumentParser(prog="tokenbook", description="Token spend ledger for LLM calls.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("collector", help="run the OTLP collector")
    p.add_argument("--config", default=None, metavar="FILE", help="YAML config file (default: none)")
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="embedded ClickHouse directory, config storage.clickhouse.data_dir (default: ./tokenbook-data)",
    )
    p.add_argument(
        "--grpc",
        default=None,
        type=host_port,
        metavar="HOST:PORT",
        help="OTLP/gRPC, config receivers.otlp.protocols.grpc.endpoint (default: 127.0.0.1:4317)",
    )
    p.add_argument(
        "--http",
        default=None,
        type=host_port,
        metavar="HOST:PORT",
        help="OTLP/HTTP, config receivers.otlp.protocols.http.endpoint (default: 127.0.0.1:4318)",
    )
    p.add_argument(
        "--admin",
        default=None,
        type=host_port,
        metavar="HOST:PORT",
        help="admin/query API, config admin.endpoint (default: 127.0.0.1:4319)",
    )
    p.add_argument(
        "--overrides",
        default=None,
        metavar="FILE",
        help="YAML price overrides file, config pricing.overrides (default: none, the catalog only)",
    )
    p.add_argument(
        "--books",
        default=None,
        metavar="FILE",
        help="YAML price books file, what each tenant is billed, config pricing.books (default: none, "
        "every tenant billed the list price)",
    )
    p.add_argument(
        "--backfill",
        action="store_true",
        help="accept spans of any age: lifts limits.max_span_age (default: off, 30 days)",
    )

    p = sub.add_parser("demo", help="run a multi-tenant agent workload end to end and print its costs")
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="where the demo keeps its store; a previous demo's store there is replaced "
        "(default: ./tokenbook-demo-data)",
    )

    p = sub.add_parser("report", help="cost tables")
    p.add_argument("--by", default="tenant", choices=_DIMENSIONS, help="what to group by (default: tenant)")
    p.add_argument(
        "--since", default="24h", help="a duration (30m, 24h, 7d) or an ISO timestamp (default: 24h)"
    )
    p.add_argument("--until", default=None, help="a duration ago or an ISO timestamp (default: now)")
    p.add_argument("--tenant", default=None, help="only this tenant's calls (default: every tenant)")
    p.add_argument(
        "--context", default=None, metavar="ID", help="one context's calls in time order (default: none)"
    )
    _add_currency(p)
    _add_format(p)
    _add_store_target(p)

    p = sub.add_parser("explain", help="why each recorded span of a trace or context is billed or not")
    p.add_argument("id", metavar="TRACE_ID|CONTEXT_ID", help="a trace ID (32 hex digits) or a context ID")
    p.add_argument("--tenant", default=None, help="only this tenant's spans (default: every tenant)")
    _add_format(p, money=False)
    _add_store_target(p)

    p = sub.add_parser("sql", help="run one SELECT over the store")
    p.add_argument("query", help="one SELECT; {name:Type} placeholders are bound from --param")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value for the {NAME:Type} placeholder, repeatable (default: none)",
    )
    _add_format(p)
    _add_store_target(p)

    p = sub.add_parser("prices", help="look up the price catalog; list unpriced models")
    p.add_argument("model", nargs="?", default=None, help="a model name (default: list models)")
    p.add_argument(
        "--provider", default=None, help="provider, OTel or catalog name (default: every provider)"
    )
    p.add_argument("--at", default=None, help="ISO timestamp the price must be in force at (default: now)")
    p.add_argument(
        "--overrides", default=None, metavar="FILE", help="YAML price overrides file (default: none)"
    )
    p.add_argument(
        "--service-tier",
        default=None,
        metavar="TIER",
        help="the prices of this service tier: flex, priority, batch, ... (default: standard)",
    )
    p.add_argument(
        "--tenant",
        default=None,
        help="what this tenant is billed, by its price book in --books (default: list prices only)",
    )
    p.add_argument("--books", default=None, metavar="FILE", help="YAML price books file (default: none)")
    p.add_argument(
        "--unpriced", action="store_true", help="models seen in the ledger without a price (default: off)"
    )
    p.add_argument(
        "--version",
        action="store_true",
        help="print the price catalog in use, the installed genai-prices (default: off)",
    )
    _add_format(p, money=False)
    _add_store_target(p)

    p = sub.add_parser("reprice", help="recompute stored costs after a price change")
    p.add_argument("--since", required=True, help="a duration (30m, 24h, 7d) or an ISO timestamp (required)")
    p.add_argument("--until", default=None, help="a duration ago or an ISO timestamp (default: now)")
    p.add_argument("--model", default=None, help="only this model's calls (default: every model)")
    p.add_argument(
        "--overrides",
        default=None,
        metavar="FILE",
        help="YAML price overrides file (default: none, the catalog only)",
    )
    p.add_argument(
        "--books",
        default=None,
        metavar="FILE",
        help="YAML price books file: bill the calls again with it (default: none, the list price)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would change (calls, old total -> new total, calls losing their price) and "
        "write nothing (default: off)",
    )
    _add_store_target(p)

    p = sub.add_parser("migrate", help="apply the schema to a server, or print the rendered DDL")
    p.add_argument(
        "--cluster",
        default=None,
        metavar="NAME",
        help="render ON CLUSTER + Replicated* + Distributed (default: a single server)",
    )
    p.add_argument(
        "--print", dest="print_only", action="store_true", help="print the DDL, apply nothing (default: off)"
    )
    p.add_argument(
        "--url", default=None, metavar="URL", help="ClickHouse server URL (default: the embedded store)"
    )
    p.add_argument(
        "--data-dir", default=None, metavar="DIR", help="embedded store directory (default: ./tokenbook-data)"
    )
    p.add_argument("--database", default="tokenbook", help="database name (default: tokenbook)")

    p = sub.add_parser("budgets", help="budget and quota states")
    p.add_argument("--tenant", default=None, help="only this tenant (default: every tenant)")
    _add_format(p)
    _add_store_target(p)

    p = sub.add_parser("quarantine", help="rows storage refused: list them, or insert them again")
    p.add_argument("action", choices=("list", "replay"), help="list the rows, or insert them again")
    p.add_argument("--all", action="store_true", help="list: also the rows already replayed (default: off)")
    _add_format(p, money=False)
    _add_store_target(p)

    p = sub.add_parser("export", help="cost and usage files for FinOps tools (FOCUS)")
    p.add_argument("kind", choices=("focus",), help="focus: FinOps Open Cost and Usage Specification 1.2")
    p.add_argument("--since", required=True, help="first UTC day, e.g. 2026-01-01 (required)")
    p.add_argument("--until", required=True, help="the UTC day after the last, e.g. 2026-02-01 (required)")
    p.add_argument("--tenant", default=None, help="only this tenant's rows (default: every tenant)")
    p.add_argument(
        "--format", default="csv", choices=("csv", "jsonl", "parquet"), help="file format (default: csv)"
    )
    p.add_argument(
        "--output", default=None, metavar="FILE", help="write here (default: stdout; parquet needs a file)"
    )
    p.add_argument(
        "--billing-account",
        default="tokenbook",
        metavar="NAME",
        help="BillingAccountId and BillingAccountName of every row (default: tokenbook)",
    )
    p.add_argument(
        "--no-record",
        action="store_true",
        help="do not record the export; a recorded export is corrected by later ones (default: record)",
    )
    _add_currency(p)
    _add_store_target(p)

    p = sub.add_parser("reconcile", help="import the provider's usage and cost exports; print the drift")
    p.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="OpenAI Usage/Costs API JSON or dashboard CSV, Anthropic usage_report/cost_report JSON or "
        "console CSV (default: none, print what earlier imports hold)",
    )
    p.add_argument(
        "--since",
        default=None,
        help="first UTC day, e.g. 2026-03-01 (default: the files' first day, else 7 days ago)",
    )
    p.add_argument(
        "--until",
        default=None,
        help="the UTC day after the last, e.g. 2026-04-01 (default: the day after the files' last, "
        "else tomorrow)",
    )
    p.add_argument(
        "--provider", default=None, choices=("openai", "anthropic"), help="only this provider (default: both)"
    )
    p.add_argument(
        "--tenant",
        default=None,
        help="the files are this tenant's own export: compare with its calls only (default: the whole "
        "organization, every tenant's calls)",
    )
    p.add_argument(
        "--threshold",
        default="0.05",
        metavar="FRACTION",
        help="a row drifts beyond it when tokens or cost differ by more than this fraction of the larger "
        "figure (default: 0.05)",
    )
    _add_format(p)
    _add_store_target(p)

    p = sub.add_parser("tenants", help="per-tenant roles and row policies on a ClickHouse server")
    p.add_argument(
        "action", choices=("policies",), help="policies: create (or print) a role and row policies per tenant"
    )
    p.add_argument(
        "--reader",
        required=True,
        metavar="USER",
        help="the ClickHouse user tenant-scoped queries run as: storage.clickhouse.tenant_reader (required)",
    )
    p.add_argument(
        "--tenant",
        action="append",
        metavar="TENANT",
        help="a tenant to confine; repeat for more (default: only those of --config)",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="also every tenant of this collector config's tenant-scoped tokens (default: not used)",
    )
    p.add_argument(
        "--url",
        default=None,
        metavar="URL",
        help="a ClickHouse server, as an account allowed to manage access (default: none: --print only)",
    )
    p.add_argument("--database", default="tokenbook", help="database name (default: tokenbook)")
    p.add_argument(
        "--cluster", default=None, metavar="NAME", help="render ON CLUSTER NAME (default: a single server)"
    )
    p.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the statements, apply nothing (default: off)",
    )
    p.add_argument(
        "--prune",
        action="store_true",
        help="also drop the roles and policies of tenants not listed; needs --url (default: off)",
    )
    return parser, dict(sub.choices)


def build_parser() -> argparse.ArgumentParser:
    """The ``tokenbook`` argument parser: every command and its flags (handlers load lazily)."""
    return _parsers()[0]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; an unknown option is reported with its command's usage."""
    parser, commands = _parsers()
    args, extras = parser.parse_known_args(argv)
    if extras:
        commands[args.command].error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tokenbook`` command with `argv` (default: ``sys.argv[1:]``); returns the exit code."""
    args = parse_args(argv)
    module_name, func_name = _HANDLERS[args.command].split(":")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
    except ImportError as exc:
        print(f"tokenbook {args.command}: {exc}; {_EXTRA_HINT}", file=sys.stderr)
        return 2
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        print(f"tokenbook {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
