"""`tokenbook collector [--config FILE] [--data-dir DIR] [--grpc H:P] [--http H:P] [--admin H:P]
[--overrides FILE] [--books FILE]`.

Before anything touches the store, the three listening addresses are checked: a port in use is
reported with its address and the flag (and config key) that moves it, and the data directory is
left alone.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import NoReturn

from tokenbook.collector.config import CollectorConfig, ConfigError, load_config
from tokenbook.collector.service import Collector, JsonLogFormatter
from tokenbook.genai.pricing.books import PriceBooks
from tokenbook.genai.pricing.overrides import PriceConfigError, load_entries

__all__ = ["cmd_collector", "one_line", "port_problem"]

_log = logging.getLogger("tokenbook.collector.service")


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def one_line(exc: Exception) -> str:
    """An error whose message lists problems on indented lines, as one line."""
    return str(exc).replace(":\n  ", ": ", 1).replace("\n  ", "; ").replace("\n", " ")


def port_problem(config: CollectorConfig) -> str | None:
    """Why one of the collector's addresses cannot be listened on, or None when all three can."""
    endpoints = (
        (config.grpc.endpoint, "OTLP/gRPC", "--grpc", "receivers.otlp.protocols.grpc.endpoint"),
        (config.http.endpoint, "OTLP/HTTP", "--http", "receivers.otlp.protocols.http.endpoint"),
        (config.admin.endpoint, "admin API", "--admin", "admin.endpoint"),
    )
    for endpoint, what, flag, key in endpoints:
        host, _, port = endpoint.rpartition(":")
        host = host.strip("[]")
        if int(port) == 0:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                s.bind((host, int(port)))
            except OSError as exc:
                reason = "is already in use" if exc.errno == 98 else f"cannot be listened on ({exc.strerror})"
                return (
                    f"{what} address {endpoint} {reason}: stop what listens there, or pass "
                    f"{flag} HOST:PORT (config key {key})"
                )
    return None


def _load(args: argparse.Namespace) -> CollectorConfig:
    config = load_config(
        args.config,
        data_dir=args.data_dir,
        grpc=args.grpc,
        http=args.http,
        admin=args.admin,
        overrides=args.overrides,
        books=args.books,
        backfill=args.backfill,
    )
    if config.pricing_overrides is not None:
        load_entries(config.pricing_overrides)  # a bad file fails here, before anything starts
    if config.pricing.books is not None:
        PriceBooks(config.pricing.books)
    return config


def _end_process(code: int) -> NoReturn:
    """End the process with `code` now, without the interpreter's finalization.

    Called once a started collector has stopped: drained, its store closed, its logs written. What
    finalization would add is the embedded engine's own teardown, which can crash (SIGSEGV) or hang at
    that point, so that a clean stop would read as a crash to the service manager."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_collector(args: argparse.Namespace) -> int:
    """`tokenbook collector`: run until SIGTERM/SIGINT, then drain and exit 0 (1 when it failed to
    start). Once the collector has started, the process ends here (`_end_process`) rather than by
    returning: a problem found before that (config, ports) returns 2."""
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"tokenbook collector: invalid config: {'; '.join(exc.problems)}", file=sys.stderr)
        return 2
    except PriceConfigError as exc:
        books = exc.what == "price books"
        where = "--books, config pricing.books" if books else "--overrides, config pricing.overrides"
        print(f"tokenbook collector: {one_line(exc)} ({where})", file=sys.stderr)
        return 2
    if (problem := port_problem(config)) is not None:
        print(f"tokenbook collector: {problem}", file=sys.stderr)
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
        print(f"tokenbook collector: failed to start: {exc}", file=sys.stderr)
        collector.stop(drain_timeout=0)
        _end_process(1)
    while not stop.wait(0.5):
        pass
    collector.stop()
    _end_process(0)
