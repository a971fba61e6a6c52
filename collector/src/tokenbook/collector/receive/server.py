"""Running the collector's HTTP servers (OTLP/HTTP receiver, admin API) on their own threads."""

from __future__ import annotations

import socketserver
import threading

__all__ = ["ServerThread", "address_of"]


def address_of(endpoint: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a socket address; the config validated it."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


class ServerThread:
    """Serves `server` on a daemon thread named `name`; `port` is the bound port (for port 0)."""

    def __init__(self, server: socketserver.TCPServer, name: str) -> None:
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True
        )

    def start(self) -> None:
        """Start serving on the thread; the socket is already bound."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and close the socket; requests in progress finish on their own threads."""
        self._server.shutdown()
        self._server.server_close()
