"""tokenbook.collector: the OTLP collector (receivers, pipeline, write-ahead log, ClickHouse store).

Names are resolved lazily (PEP 562) so that importing one module, e.g. `tokenbook.collector.ledger`
from the CLI, does not pay for gRPC or chDB.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenbook.collector.config import CollectorConfig, ConfigError, load_config
    from tokenbook.collector.ledger import CallRow, StepRow
    from tokenbook.collector.service import Collector, cmd_collector
    from tokenbook.collector.store import Store

__all__ = [
    "CallRow",
    "Collector",
    "CollectorConfig",
    "ConfigError",
    "StepRow",
    "Store",
    "cmd_collector",
    "load_config",
]

_HOME = {
    "CallRow": "ledger",
    "StepRow": "ledger",
    "Collector": "service",
    "cmd_collector": "service",
    "CollectorConfig": "config",
    "ConfigError": "config",
    "load_config": "config",
    "Store": "store",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenbook.collector' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tokenbook.collector.{module}"), name)
