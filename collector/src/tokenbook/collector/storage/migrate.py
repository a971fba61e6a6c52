"""Schema migrations: numbered, immutable `.sql` files applied in order and recorded.

`storage/sql/migrations/NNN_name.sql` are never edited once shipped: a schema change is a new
file. Each renders for a single node or a cluster (see `sqltemplate`). Applied versions are
recorded in `<db>.schema_migrations` with the checksum of the file's source, so `migrate()` is
idempotent and refuses to run over a migration that was changed after it was applied.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from tokenbook.collector.storage.sqltemplate import SchemaTarget, load_sql, render, render_query

__all__ = [
    "Migration",
    "MigrationError",
    "apply_migrations",
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
        """The migration's statements rendered for `target` (single node or cluster)."""
        return render(self.source, target)


def load_migrations() -> list[Migration]:
    """All migration files in version order (gaps are allowed: teams may reserve ranges)."""
    folder = resources.files("tokenbook.collector.storage").joinpath("sql", "migrations")
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
