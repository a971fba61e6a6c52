"""`tokenbook quarantine list|replay`: ledger rows that storage refused, isolated by the collector.

``list`` reads like `report` (the embedded store, through its collector's admin API while one runs;
``--admin``; ``--url``). ``replay`` inserts every quarantined row again (e.g. after a schema or
settings change) and marks what went in as ``replayed``; it needs the store itself: a ClickHouse
server (``--url``), or an embedded store no collector is running on (chDB allows one process).
"""

from __future__ import annotations

import argparse
import sys

from tokenbook.cli.output import print_result
from tokenbook.cli.reports import existing_dir, open_reader
from tokenbook.collector.storage.guard import QueryRefused
from tokenbook.collector.storage.owner import current_owner
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import Store, StoreError

__all__ = ["cmd_quarantine"]


def cmd_quarantine(args: argparse.Namespace) -> int:
    """`tokenbook quarantine list|replay`; returns the exit code (3: rows still refused)."""
    try:
        if args.action == "list":
            sql = render_query("quarantine_list.sql", "tokenbook")
            with open_reader(args) as reader:
                columns, types, rows = reader.query_readonly(sql, {"all": args.all}, max_rows=100_000)
            print_result(columns, types, rows, args.format)
            return 0
        if args.admin:
            raise StoreError("replay needs the store itself: --url, or --data-dir with the collector stopped")
        if not args.url:
            data_dir = existing_dir(args)
            if (owner := current_owner(data_dir)) is not None:
                raise StoreError(
                    f"the collector at {owner} owns {data_dir}: stop it to replay (chDB allows one process)"
                )
        with Store.open(args.url) if args.url else Store.open(data_dir=existing_dir(args)) as store:
            store.migrate()
            replayed, refused = store.replay_quarantine()
    except (QueryRefused, StoreError) as exc:
        print(f"tokenbook quarantine: {exc}", file=sys.stderr)
        return 1
    print(f"replayed {replayed} row(s); {refused} still refused (kept in quarantine with the new reason)")
    return 0 if refused == 0 else 3
