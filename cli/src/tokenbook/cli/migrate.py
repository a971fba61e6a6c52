"""`tokenbook migrate [--cluster NAME] [--print] [--url URL | --data-dir DIR] [--database DB]`."""

from __future__ import annotations

import argparse
import sys

from tokenbook.collector.storage.location import DEFAULT_DATA_DIR
from tokenbook.collector.storage.migrate import MigrationError, rendered_ddl
from tokenbook.collector.storage.owner import current_owner
from tokenbook.collector.storage.sqltemplate import SchemaTarget
from tokenbook.collector.storage.store import Store, StoreError

__all__ = ["cmd_migrate"]


def cmd_migrate(args: argparse.Namespace) -> int:
    """`tokenbook migrate [--cluster NAME] [--print] [--url URL | --data-dir DIR] [--database DB]`."""
    target = SchemaTarget(database=args.database, cluster=args.cluster)
    if args.print_only:
        sys.stdout.write(rendered_ddl(target))
        return 0
    if args.cluster is not None and args.url is None:
        print("tokenbook migrate: --cluster needs --url (a clustered ClickHouse server)", file=sys.stderr)
        return 2

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
