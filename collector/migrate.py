"""Schema migrations: numbered, immutable `.sql` files applied in order and recorded.

`collector/sql/migrations/NNN_name.sql` are never edited once shipped: a schema change is a new
file. Each renders for a single node or a cluster (see `sqltemplate`). Applied versions are
recorded in `<db>.schema_migrations` with the checksum of the file's source, so `migrate()` is
idempotent and refuses to run over a migration that was changed after it was applied.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from tokenbook.collector.sqltemplate import SchemaTarget, load_sql, render, render_query

__all__ = [
    "Migration",
    "MigrationError",
    "apply_migrations",
    "cmd_migrate",
    "load_migrations",
    "rendered_ddl",
]

_FILE = re.compile(r"(\d{3})_(\w+)\.sql")


class MigrationError(RuntimeError):
    """A migration cannot be applied (e.g. an applied file was edited)."""


class _Executor(Protocol):
    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None: ...

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[str], list[tuple[Any, ...]]]: ...


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str  # file name, e.g. "001_llm_calls.sql"
    source: str

    @property
    def checksum(self) -> str:
        """sha256 of the unrendered source: the same for single-node and clustered schemas."""
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def statements(self, target: SchemaTarget) -> list[str]:
        return render(self.source, target)


def load_migrations() -> list[Migration]:
    """All migration files in version order (gaps are allowed: teams may reserve ranges)."""
    folder = resources.files("tokenbook.collector").joinpath("sql", "migrations")
    found = []
    for entry in folder.iterdir():
        m = _FILE.fullmatch(entry.name)
        if m is not None:
            found.append(Migration(int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {[m.name for m in found]}")
    return found


def rendered_ddl(target: SchemaTarget) -> str:
    """The whole schema as one SQL script (bootstrap + every migration), `;`-terminated statements."""
    files = [("schema_migrations.sql (bootstrap)", load_sql("schema_migrations.sql"))]
    files += [(mig.name, mig.source) for mig in load_migrations()]
    parts = [f"-- {name}\n" + "\n\n".join(f"{s};" for s in render(source, target)) for name, source in files]
    return "\n\n".join(parts) + "\n"


def apply_migrations(executor: _Executor, target: SchemaTarget) -> list[str]:
    """Apply pending migrations in order; returns the names applied (empty when up to date)."""
    for statement in render(load_sql("schema_migrations.sql"), target):
        executor.command(statement)
    _, _, rows = executor.query(render_query("schema_migrations_applied.sql", target.database))
    applied = {int(version): str(checksum) for version, checksum in rows}
    record = render_query("schema_migrations_record.sql", target.database)
    done = []
    for mig in load_migrations():
        if mig.version in applied:
            if applied[mig.version] != mig.checksum:
                raise MigrationError(
                    f"{mig.name} was changed after it was applied (checksum differs); migrations are "
                    "immutable: restore the file and add a new numbered migration instead"
                )
            continue
        for statement in mig.statements(target):
            executor.command(statement)
        executor.command(record, {"version": mig.version, "name": mig.name, "checksum": mig.checksum})
        done.append(mig.name)
    return done


def cmd_migrate(args: argparse.Namespace) -> int:
    """`tokenbook migrate [--cluster NAME] [--print] [--url URL | --data-dir DIR] [--database DB]`."""
    target = SchemaTarget(database=args.database, cluster=args.cluster)
    if args.print_only:
        sys.stdout.write(rendered_ddl(target))
        return 0
    if args.cluster is not None and args.url is None:
        print("tokenbook migrate: --cluster needs --url (a clustered ClickHouse server)", file=sys.stderr)
        return 2
    from tokenbook.collector.config import DEFAULT_DATA_DIR
    from tokenbook.collector.owner import current_owner
    from tokenbook.collector.store import Store, StoreError

    data_dir = args.data_dir or DEFAULT_DATA_DIR
    if args.url is None and (owner := current_owner(data_dir)) is not None:
        print(
            f"tokenbook migrate: {data_dir} is owned by the collector at {owner}, which migrates it at start"
        )
        return 0
    try:
        with Store.open(args.url, data_dir=data_dir, database=args.database) as store:
            names = store.migrate(cluster=args.cluster)
    except (StoreError, MigrationError) as exc:
        print(f"tokenbook migrate: {exc}", file=sys.stderr)
        return 1
    for name in names:
        print(f"applied {name}")
    print("schema up to date" if not names else f"{len(names)} migration(s) applied")
    return 0
