"""`tokenbook tenants policies`: per-tenant roles and row policies on a ClickHouse server.

Renders (`--print`) or applies the statements of `tokenbook.collector.storage.row_policies`: a role
per tenant with a row policy on every table of the database, granted to the reader user that the
collector runs tenant-scoped queries as (``storage.clickhouse.tenant_reader``). The tenants are those
named with ``--tenant`` and those of the tenant-scoped tokens of ``--config``. Applying needs a server
account allowed to manage access (``CREATE ROLE``, ``CREATE ROW POLICY``, ``ROLE ADMIN``); ``--prune``
also removes the policies and roles of tenants no longer listed. Run it again whenever a migration
adds a table or a tenant gets a token.
"""

from __future__ import annotations

import argparse
import sys

from tokenbook.collector.storage.row_policies import (
    policy_statements,
    prune_statements,
    role_prefix,
    schema_tables,
    tenant_role,
)
from tokenbook.collector.storage.store import Store, StoreError

__all__ = ["cmd_tenants"]


def cmd_tenants(args: argparse.Namespace) -> int:
    """`tokenbook tenants policies`; returns the exit code (2: a usage error)."""
    try:
        tenants = _tenants(args)
    except ValueError as exc:
        print(f"tokenbook tenants: {exc}", file=sys.stderr)
        return 2
    if not tenants:
        print(
            "tokenbook tenants: name the tenants with --tenant, or --config with tenant tokens",
            file=sys.stderr,
        )
        return 2
    if args.url is None and not args.print_only:
        print("tokenbook tenants: applying needs --url (a ClickHouse server); or --print", file=sys.stderr)
        return 2
    if args.prune and args.url is None:
        print("tokenbook tenants: --prune needs --url (it reads the server's roles)", file=sys.stderr)
        return 2
    try:
        if args.url is None:
            statements = policy_statements(
                args.database, schema_tables(args.database), tenants, args.reader, cluster=args.cluster
            )
            _print(statements)
            return 0
        with Store.open(args.url, database=args.database) as store:
            tables = store.policy_tables()
            if not tables:
                raise StoreError(f"database {args.database} has no tables: run `tokenbook migrate` first")
            statements = policy_statements(args.database, tables, tenants, args.reader, cluster=args.cluster)
            if args.prune:
                stale = set(store.tenant_roles()) - {tenant_role(args.database, t) for t in tenants}
                statements += prune_statements(args.database, tables, stale, cluster=args.cluster)
            if args.print_only:
                _print(statements)
                return 0
            for done, sql in enumerate(statements, 1):
                store.command(sql)
                if done % 50 == 0 or done == len(statements):
                    print(f"applied {done}/{len(statements)} statements", file=sys.stderr)
    except (StoreError, ValueError) as exc:
        print(f"tokenbook tenants: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(tenants)} tenant(s) confined by row policies on {len(tables)} table(s) for user {args.reader}"
        f" (roles {role_prefix(args.database)}<tenant>)"
    )
    return 0


def _tenants(args: argparse.Namespace) -> list[str]:
    """The tenants of ``--tenant`` and of the tenant-scoped tokens of ``--config``."""
    tenants = set(args.tenant or ())
    if args.config is not None:
        from tokenbook.collector.config import ConfigError, load_config

        try:
            config = load_config(args.config)
        except ConfigError as exc:
            raise ValueError(f"{args.config}: {exc}") from None
        if config.auth is not None:
            tenants |= config.auth.tenants()
    return sorted(tenants)


def _print(statements: list[str]) -> None:
    sys.stdout.write("".join(f"{sql};\n" for sql in statements))
