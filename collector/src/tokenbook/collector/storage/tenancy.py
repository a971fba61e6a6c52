"""Confining a query to one tenant: ClickHouse's ``additional_table_filters`` for every table and view.

The setting applies inside subqueries, CTEs, JOINs and views, and a query cannot lift it: user SQL
runs with ``readonly=1`` and the guard refuses any ``SETTINGS`` clause.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["TENANT_PATTERN", "tenant_filters"]

#: What a tenant ID may look like (checked when tokens are loaded, and again here).
TENANT_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def tenant_filters(database: str, tables: Iterable[tuple[str, bool]], tenant: str) -> str:
    """The ``additional_table_filters`` setting that confines a query to `tenant`.

    `tables` are (name, has a ``tenant_id`` column) for every table and view of `database`. The
    tenant was validated against `TENANT_PATTERN` at config load (no quote can occur); it is still
    escaped here so that the setting can never be broken out of.
    """
    if not TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(f"invalid tenant {tenant!r}")
    condition = f"tenant_id = \\'{tenant}\\'"
    entries = []
    for name, has_tenant in tables:
        if not _IDENTIFIER.fullmatch(name) or not _IDENTIFIER.fullmatch(database):
            raise ValueError(f"unexpected table name {database}.{name}")
        entries.append(f"'{database}.{name}': '{condition if has_tenant else '0'}'")
    return "{" + ", ".join(entries) + "}"
