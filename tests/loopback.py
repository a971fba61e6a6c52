"""Loopback servers of the tests (provider stubs, webhook receivers, OTLP sinks) on a thread that
stops promptly."""

from __future__ import annotations

import socketserver
import threading
from typing import Final

__all__ = ["POLL_S", "serving_thread"]

#: How often a serving thread looks for `shutdown()`: `serve_forever`'s default, 0.5 s, is what every
#: `shutdown()` waits out.
POLL_S: Final = 0.02


def serving_thread(server: socketserver.BaseServer, name: str | None = None) -> threading.Thread:
    """A daemon thread (not started) that serves `server` until `server.shutdown()`, which then returns
    within `POLL_S`."""
    return threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_S}, name=name, daemon=True
    )
