"""Per-tenant row policies on a ClickHouse server: tenant confinement that no query text can lift.

Everywhere, a tenant-scoped query (a token of one tenant) runs with ``readonly=1`` and
``additional_table_filters`` (`tenancy.tenant_filters`), after the guard refused any ``SETTINGS``
clause. On a ClickHouse server that has users and roles, an operator can add a second, independent
barrier: a role per tenant (`tenant_role`), a row policy per tenant on every table of the database
(``tenant_id = '<tenant>'``; ``0`` on a table without ``tenant_id``), all granted to one *reader*
user that has no default role. The collector runs a tenant-scoped query as the reader
(``storage.clickhouse.tenant_reader``) with that tenant's role for that query alone (the HTTP
interface's ``role`` parameter, ClickHouse 24.4 and later). The server then returns only the tenant's
rows whatever the query's text: a hole in the guard, or a table the filters missed, cannot show another
tenant's rows, because the policy is enforced by the server for the user, not by settings of the query.

`policy_statements` renders the statements (``tokenbook tenants policies`` runs or prints them); the
embedded store has no users or roles and keeps the filters alone. `schema_tables` reads the tables
the migrations create from their DDL, for printing the statements without a server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from tokenbook.collector.storage.migrate import load_migrations
from tokenbook.collector.storage.sqltemplate import SchemaTarget, load_sql, render
from tokenbook.collector.storage.tenancy import TENANT_PATTERN

__all__ = [
    "PolicyTable",
    "policy_statements",
    "prune_statements",
    "role_prefix",
    "schema_tables",
    "tenant_role",
]

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A ClickHouse user name as tokenbook accepts it (quoted with backticks in the statements).
_USER: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}")
#: The statements of the rendered schema that make, change or remove a table (`schema_tables`).
_TABLE = r"(?P<db>\w+)\.(?P<table>\w+)"
_CREATE_TABLE: Final = re.compile(
    rf"CREATE TABLE (?:IF NOT EXISTS )?{_TABLE}\s*\((?P<columns>.*?)\)\s*ENGINE\b", re.S
)
_ADD_TENANT: Final = re.compile(rf"ALTER TABLE {_TABLE}\b.*\bADD COLUMN (?:IF NOT EXISTS )?tenant_id\b", re.S)
_DROP_TABLE: Final = re.compile(rf"DROP TABLE (?:IF EXISTS )?{_TABLE}")
_TENANT_COLUMN: Final = re.compile(r"^\s*tenant_id\s", re.M)


class PolicyTable(NamedTuple):
    """A table of the tokenbook database, and whether it has a ``tenant_id`` column."""

    name: str
    has_tenant: bool


def role_prefix(database: str) -> str:
    """The start of every tenant role's name of `database` (for listing and pruning them)."""
    if not _IDENTIFIER.fullmatch(database):
        raise ValueError(f"invalid database name {database!r}")
    return f"tokenbook_{database}_tenant_"


def tenant_role(database: str, tenant: str) -> str:
    """The role (and row policy) name of `tenant` in `database`: ``tokenbook_<database>_tenant_<tenant>``."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(f"invalid tenant {tenant!r}")
    return role_prefix(database) + tenant


def _quoted(name: str) -> str:
    """`name` as a backquoted identifier (the names checked here hold no backquote or backslash)."""
    if "`" in name or "\\" in name:
        raise ValueError(f"unexpected character in {name!r}")
    return f"`{name}`"


def _on_cluster(cluster: str | None) -> str:
    if cluster is None:
        return ""
    if not _IDENTIFIER.fullmatch(cluster):
        raise ValueError(f"invalid cluster name {cluster!r}")
    return f" ON CLUSTER {_quoted(cluster)}"


def schema_tables(database: str) -> list[PolicyTable]:
    """The tables (not views) that the migrations create in `database` on a single node, and which
    have a ``tenant_id`` column, read from their DDL without an engine: what `Store.policy_tables`
    returns for a migrated database (`tests/collector/storage/test_row_policies.py` compares them)."""
    target = SchemaTarget(database=database)
    statements = render(load_sql("schema_migrations.sql"), target)
    statements += [statement for migration in load_migrations() for statement in migration.statements(target)]
    tables: dict[str, bool] = {}
    for statement in statements:
        if (created := _CREATE_TABLE.search(statement)) and created["db"] == database:
            tables[created["table"]] = _TENANT_COLUMN.search(created["columns"]) is not None
        elif (added := _ADD_TENANT.search(statement)) and added["db"] == database:
            if added["table"] in tables:
                tables[added["table"]] = True
        elif (dropped := _DROP_TABLE.search(statement)) and dropped["db"] == database:
            tables.pop(dropped["table"], None)
    return [PolicyTable(name, has_tenant) for name, has_tenant in sorted(tables.items())]


def policy_statements(
    database: str,
    tables: Sequence[PolicyTable],
    tenants: Iterable[str],
    reader: str,
    *,
    cluster: str | None = None,
) -> list[str]:
    """The statements that confine `reader`'s queries under each tenant's role to that tenant's rows.

    Per tenant: its role, ``SELECT`` on `database` for it, a row policy on every one of `tables`
    (``tenant_id = '<tenant>'``, or ``0``: no row, on a table without ``tenant_id``) and the role
    granted to `reader`; then `reader` gets no default role, so that only the role a query names is
    in force. Idempotent (``IF NOT EXISTS`` / ``OR REPLACE``). Names are checked and backquoted; a
    tenant is a `TENANT_PATTERN` string, which holds no quote.
    """
    if not _USER.fullmatch(reader):
        raise ValueError(f"invalid reader user name {reader!r}")
    on = _on_cluster(cluster)
    db = _quoted(database)
    user = _quoted(reader)
    out: list[str] = []
    for tenant in sorted(set(tenants)):
        role = _quoted(tenant_role(database, tenant))
        out += [f"CREATE ROLE IF NOT EXISTS {role}{on}", f"GRANT{on} SELECT ON {db}.* TO {role}"]
        for table in tables:
            if not _IDENTIFIER.fullmatch(table.name):
                raise ValueError(f"unexpected table name {table.name!r}")
            condition = f"tenant_id = '{tenant}'" if table.has_tenant else "0"
            out.append(
                f"CREATE ROW POLICY OR REPLACE {role} ON {db}.{_quoted(table.name)}{on} "
                f"AS PERMISSIVE FOR SELECT USING {condition} TO {role}"
            )
        out.append(f"GRANT{on} {role} TO {user}")
    out.append(f"ALTER USER {user}{on} DEFAULT ROLE NONE")
    return out


def prune_statements(
    database: str, tables: Sequence[PolicyTable], roles: Iterable[str], *, cluster: str | None = None
) -> list[str]:
    """The statements that remove the row policies and the roles `roles` (tenant roles of `database`
    whose tenant is no longer confined: its tokens were removed)."""
    on = _on_cluster(cluster)
    db = _quoted(database)
    prefix = role_prefix(database)
    out: list[str] = []
    for name in sorted(set(roles)):
        if not name.startswith(prefix) or not TENANT_PATTERN.fullmatch(name[len(prefix) :]):
            raise ValueError(f"{name!r} is not a tenant role of {database}")
        role = _quoted(name)
        out += [
            f"DROP ROW POLICY IF EXISTS {role} ON {db}.{_quoted(table.name)}{on}"
            for table in tables
            if _IDENTIFIER.fullmatch(table.name)
        ]
        out.append(f"DROP ROLE IF EXISTS {role}{on}")
    return out
