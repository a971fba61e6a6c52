"""`tokenbook collector [--config FILE] [--data-dir DIR] [--grpc H:P] [--http H:P] [--admin H:P]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from tokenbook.collector.config import ConfigError, load_config
from tokenbook.collector.service import Collector, JsonLogFormatter

__all__ = ["cmd_collector"]

_log = logging.getLogger("tokenbook.collector.service")


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def cmd_collector(args: argparse.Namespace) -> int:
    """`tokenbook collector`: run until SIGTERM/SIGINT, then drain and return 0."""
    try:
        config = load_config(
            args.config, data_dir=args.data_dir, grpc=args.grpc, http=args.http, admin=args.admin
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    _configure_logging(config.telemetry.log_level)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    collector = Collector(config)
    try:
        collector.start()
    except (OSError, RuntimeError, ValueError) as exc:  # StoreError and OwnerError are RuntimeErrors
        _log.error("collector failed to start: %s", exc)
        collector.stop(drain_timeout=0)
        return 1
    while not stop.wait(0.5):
        pass
    collector.stop()
    return 0
