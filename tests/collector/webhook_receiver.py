"""A real webhook receiver on loopback for the budget tests. Not a test module.

Records every POST (headers and parsed JSON body); answers with the next status of `statuses`
(then 200 for ever), so tests can make the first deliveries fail.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.loopback import serving_thread


class WebhookReceiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = serving_thread(self._server)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def bodies(self, *, ok_only: bool = True) -> list[dict[str, Any]]:
        """Parsed bodies; with `ok_only`, one per distinct event (failed attempts are re-sent)."""
        with self._lock:
            docs = [json.loads(body) for _, body in self.requests]
        if not ok_only:
            return docs
        seen: dict[str, dict[str, Any]] = {}
        for doc in docs:
            seen[doc["event_id"]] = doc
        return list(seen.values())

    def wait_for(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until `n` distinct events arrived; returns them in arrival order."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            docs = self.bodies()
            if len(docs) >= n:
                return docs
            time.sleep(0.05)
        raise AssertionError(f"expected {n} webhook events, got {self.bodies()}")
