"""tokenbook.collector: the OTLP collector, one sub-package per stage of the data flow.

receive (gRPC and HTTP receivers, auth) -> ingest (admit, dedup, build rows) -> decode (OTLP to span
records) -> wal (the write-ahead log and its writer) -> storage (ClickHouse: ledger, schema, store);
query and budgets read storage; `service` wires them, `admin` serves health, metrics and queries.

Names are resolved lazily (PEP 562) so that importing one module, e.g. `tokenbook.collector.storage.ledger`
from the CLI, does not pay for gRPC or chDB.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenbook.collector.config import CollectorConfig, ConfigError, load_config
    from tokenbook.collector.service import Collector
    from tokenbook.collector.storage.ledger import CallRow, StepRow
    from tokenbook.collector.storage.store import Store

__all__ = [
    "CallRow",
    "Collector",
    "CollectorConfig",
    "ConfigError",
    "StepRow",
    "Store",
    "load_config",
]

_HOME = {
    "CallRow": "storage.ledger",
    "StepRow": "storage.ledger",
    "Collector": "service",
    "CollectorConfig": "config",
    "ConfigError": "config",
    "load_config": "config",
    "Store": "storage.store",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenbook.collector' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tokenbook.collector.{module}"), name)
