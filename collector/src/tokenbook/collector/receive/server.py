"""The collector's HTTP server (OTLP/HTTP receiver and admin API): one asyncio event loop on its own thread.

HTTP/1.1 is parsed by h11 through uvicorn's protocol (`uvicorn.protocols.http.h11_impl.H11Protocol`);
request work runs in a thread pool, never on the loop. An idle or slow connection costs a socket and a
few kilobytes, never a thread, so it cannot starve other clients. Per server (``limits.*``):

* at most ``max_open_connections`` connections are open at once; one beyond is closed as soon as it
  is accepted, before anything is read (counted in `HttpServer.refused_connections`);
* a connection must deliver a request's complete headers within ``read_timeout`` of being opened or of
  the previous response (keep-alive idle time counts), else it is closed unanswered; TLS handshakes
  are bounded by the same time;
* a request's body must arrive within ``request_timeout`` of its headers, else the connection is
  closed unanswered;
* a body above the endpoint's limit is answered 413 without being read (``Content-Length``) or as
  soon as the limit is passed (chunked); the connection is then closed, after a lingering close: the
  server's side is ended and what the client still sends of the body is read and dropped (for up to
  2 s and 64 MiB), so that a client that writes its whole body before it reads the answer, as every
  OTLP exporter does, reads the answer rather than a reset connection (and does not retry the body);
* bodies being received hold at most ``4 x max_request_bytes`` of memory in all; a request whose
  body would go beyond it is answered by the endpoint's ``busy`` response and the connection closed;
* at most ``max_connections`` requests are queued for or running on the ``workers`` threads; one
  beyond gets the endpoint's ``busy`` response (429 / 503 with ``Retry-After``) at once;
* work that names `Slots` (the admin API's queries) runs only while it holds one of them: it waits
  for a slot on the event loop, never on a worker, and gets the slots' ``full`` response when none
  frees within their wait. So long work cannot take every worker, and what is answered on the loop
  (health, readiness, metrics, budgets) never waits behind it.

An endpoint (`Endpoint`) decides from the request line and headers alone (`Endpoint.route`): it
answers at once (404, 401, 413, ...) or returns a `BodyWork` whose `run(body)` the pool runs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from tokenbook.collector.limits import DEFAULT_LIMITS, LimitsConfig

__all__ = ["BodyWork", "Endpoint", "HttpServer", "Request", "Response", "Slots", "address_of"]

_log = logging.getLogger(__name__)
_BACKLOG: Final = 1024
_MAX_HEADER_BYTES: Final = 64 * 1024  # request line + headers; above: 400 from h11
#: A connection closed while its request's body is still coming (`_LingeringTransport`) reads and drops
#: the rest for at most this long, and at most this many bytes, before it is closed.
_LINGER_SECONDS: Final = 2.0
_LINGER_BYTES: Final = 64 << 20


def address_of(endpoint: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a socket address; the config validated it."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class Request:
    """A request's line and headers, as an `Endpoint` routes it (the body is read afterwards, as its
    `BodyWork` says)."""

    method: str
    path: str  # without the query string
    query: str  # the raw query string, "" when none
    headers: Mapping[str, str]  # names lowercased; a repeated header keeps its last value

    def header(self, name: str, default: str = "") -> str:
        """The value of header `name` (case-insensitive), or `default`."""
        return self.headers.get(name, default)


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: status, body and headers, and whether the connection closes after it."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    close: bool = False  # close the connection after this response


class Slots:
    """At most `size` works run at once; one more waits up to `wait` seconds for a slot on the event
    loop, then is answered `full`. Used from the server's loop only."""

    def __init__(self, size: int, wait: float, full: Response) -> None:
        self.size = size
        self.wait = wait
        self.full = full
        self.in_use = 0
        self.refused = 0  # works answered `full`
        self._free = asyncio.Semaphore(size)

    async def acquire(self) -> bool:
        """Take a slot, waiting at most `wait` seconds; False (counted in `refused`) when none freed."""
        if not self._free.locked():
            await self._free.acquire()
        else:
            try:
                await asyncio.wait_for(self._free.acquire(), self.wait)
            except TimeoutError:
                self.refused += 1
                return False
        self.in_use += 1
        return True

    def release(self) -> None:
        """Give a slot back."""
        self.in_use -= 1
        self._free.release()


@dataclass(frozen=True, slots=True)
class BodyWork:
    """Read the body (at most `max_bytes`), then run `run(body)` on a worker thread (holding one of
    `slots`, when given)."""

    run: Callable[[bytes], Response]
    max_bytes: int
    too_large: Response  # the answer when the body goes beyond max_bytes
    busy: Response  # the answer when every worker slot is taken (retry later)
    slots: Slots | None = None


class Endpoint(Protocol):
    """What an `HttpServer` serves: the OTLP/HTTP receiver or the admin API."""

    def route(self, request: Request) -> Response | BodyWork:
        """Answer from the request line and headers, or say how to read and process the body."""


class _Phase:
    IDLE, BODY, BUSY = range(3)


class _LingeringTransport:
    """A connection's transport, as its protocol and uvicorn use it, whose `close` lingers while the
    client is still sending the request's body (the answer was given before the body was read: 413,
    busy): it sends what is buffered and ends the server's side (``write_eof``), then reads and drops
    what comes, until the client ends its side or `_LINGER_SECONDS` or `_LINGER_BYTES` pass, and only
    then closes. A second `close` closes at once. Everything else is the transport's."""

    def __init__(self, inner: asyncio.Transport, protocol: _Protocol) -> None:
        self._inner = inner
        self._protocol = protocol
        self.lingering = False
        self._left = _LINGER_BYTES
        self._timer: asyncio.TimerHandle | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def is_closing(self) -> bool:
        """Closing, or lingering before it (nothing more is written)."""
        return self.lingering or self._inner.is_closing()

    def close(self) -> None:
        """Close, lingering first while the request's body is still coming (and the transport can end
        its side alone: not over TLS); at once when already lingering."""
        inner = self._inner
        if self.lingering or inner.is_closing():
            self.finish()
            return
        if self._protocol.conn.their_state is not h11.SEND_BODY or not inner.can_write_eof():
            inner.close()
            return
        self.lingering = True
        inner.write_eof()  # after what is buffered: the answer
        inner.resume_reading()
        self._timer = asyncio.get_running_loop().call_later(_LINGER_SECONDS, self.finish)

    def drop(self, received: int) -> None:
        """`received` more bytes of the body read and dropped while lingering."""
        self._left -= received
        if self._left <= 0:
            self.finish()

    def finish(self) -> None:
        """Close now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inner.close()


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a connection cap, header/body deadlines and a lingering close
    (`HttpServer`)."""

    owner: HttpServer  # set on a per-server subclass

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timer: asyncio.TimerHandle | None = None
        self._phase = -1
        self._lingering: _LingeringTransport | None = None
        if len(self.connections) >= self.owner.limits.max_open_connections:
            self.transport = transport
            self.owner.refused_connections += 1
            transport.abort()
            return
        self._lingering = _LingeringTransport(transport, self)
        super().connection_made(self._lingering)  # type: ignore[arg-type]
        self._sync()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._lingering is not None and self._lingering.lingering:
            self._lingering.finish()  # its timer
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None and self._lingering.lingering:  # a body already answered
            self._lingering.drop(len(data))
            return
        super().data_received(data)
        self._sync()

    def eof_received(self) -> None:
        """The client ended its side: while lingering, that is the end of the connection."""
        if self._lingering is not None and self._lingering.lingering:
            self._lingering.finish()
            return
        super().eof_received()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sync(self) -> None:
        """(Re)arm the deadline when the request phase changed: waiting for headers, or for a body."""
        state = self.conn.their_state
        phase = _Phase.IDLE if state is h11.IDLE else _Phase.BODY if state is h11.SEND_BODY else _Phase.BUSY
        if phase == self._phase:
            return
        self._phase = phase
        self._cancel()
        limits = self.owner.limits
        if phase == _Phase.IDLE:
            self._timer = self.loop.call_later(limits.read_timeout, self._expire, "headers")
        elif phase == _Phase.BODY:
            self._timer = self.loop.call_later(limits.request_timeout, self._expire, "body")

    def _expire(self, what: str) -> None:
        """Close a connection whose headers or body did not arrive in time: at once, without the
        lingering close (a client that stalls mid-body is not sending; lingering would hold its
        connection, and a stop, for `_LINGER_SECONDS` more)."""
        self._timer = None
        if not self.transport.is_closing():
            _log.debug("%s: closing a connection whose %s did not arrive in time", self.owner.name, what)
            self.owner.timed_out_connections += 1
            if self._lingering is not None:
                self._lingering.finish()
            else:
                self.transport.close()


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class HttpServer:
    """Binds `endpoint` on construction (`port` is the bound port); `start`, then `stop` once."""

    def __init__(
        self,
        endpoint: str,
        handler: Endpoint,
        *,
        name: str,
        max_request_bytes: int,
        limits: LimitsConfig = DEFAULT_LIMITS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.handler = handler
        self.limits = limits
        self.ssl_context = ssl_context
        self.body_budget = 4 * max_request_bytes
        self.refused_connections = 0
        self.timed_out_connections = 0
        self.busy_requests = 0
        self._buffered = 0  # body bytes held by requests being read
        self._active = 0  # requests queued for or running on the pool
        host, port = address_of(endpoint)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(_BACKLOG)
        self._sock.setblocking(False)
        self.port = int(self._sock.getsockname()[1])
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix=name)
        self._loop = asyncio.new_event_loop()
        self._state = ServerState()
        self._config = Config(
            self._app,
            interface="asgi3",
            http=type("Protocol", (_Protocol,), {"owner": self}),
            lifespan="off",
            access_log=False,
            log_config=None,
            proxy_headers=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=max(1, round(limits.read_timeout)),
            h11_max_incomplete_event_size=_MAX_HEADER_BYTES,
        )
        self._config.load()
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._grace = 5.0  # how long `stop` lets requests in progress finish
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving on the thread; the socket is already bound."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.name}: the HTTP server did not start")

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, close idle connections, let requests in progress finish (up to `grace` s),
        then close the rest. Blocks until the server's thread has ended (or `grace` + 5 s passed)."""
        if self._thread.is_alive() and self._stopping is not None:
            self._grace = grace
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(grace + 5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._sock.close()

    @property
    def open_connections(self) -> int:
        """Connections open now (for tests and metrics)."""
        return len(self._state.connections)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        config, state = self._config, self._state

        def protocol() -> asyncio.Protocol:
            http_class: Any = config.http_protocol_class
            made: asyncio.Protocol = http_class(config=config, server_state=state, app_state={}, _loop=loop)
            return made

        server = await loop.create_server(
            protocol,
            sock=self._sock,
            ssl=self.ssl_context,
            backlog=_BACKLOG,
            ssl_handshake_timeout=self.limits.read_timeout if self.ssl_context is not None else None,
        )
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for connection in list(state.connections):
            connection.shutdown()  # idle: closed now; busy: closed after its response
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=self._grace)
        for connection in list(state.connections):
            connection.transport.close()

    # -- one request ---------------------------------------------------------------------------------

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
        )
        try:
            outcome = self.handler.route(request)
        except Exception:  # noqa: BLE001 - a bug answers 500 instead of dropping the connection
            _log.exception("%s: routing %s %s failed", self.name, request.method, request.path)
            outcome = Response(500, b'{"error": "internal error"}', close=True)
        if isinstance(outcome, Response):
            await _send(send, outcome)
            return
        if self._active >= self.limits.max_connections:
            self.busy_requests += 1
            await _send(send, _closing(outcome.busy))
            return
        try:
            body = await self._read_body(receive, outcome)
        except _TooLarge:
            await _send(send, _closing(outcome.too_large))
            return
        except MemoryError:
            self.busy_requests += 1
            await _send(send, _closing(outcome.busy))
            return
        except _Disconnected:
            return
        if self._active >= self.limits.max_connections:
            self.busy_requests += 1
            await _send(send, _closing(outcome.busy))
            return
        slots = outcome.slots
        if slots is not None and not await slots.acquire():
            await _send(send, slots.full)
            return
        self._active += 1
        try:
            response = await asyncio.get_running_loop().run_in_executor(self._pool, _run, outcome, body)
        finally:
            self._active -= 1
            if slots is not None:
                slots.release()
        await _send(send, response)

    async def _read_body(self, receive: Any, work: BodyWork) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk: bytes = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > work.max_bytes:
                        raise _TooLarge
                    if self._buffered + len(chunk) > self.body_budget:
                        raise MemoryError
                    self._buffered += len(chunk)
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        finally:
            self._buffered -= sum(len(c) for c in chunks)


def _run(work: BodyWork, body: bytes) -> Response:
    try:
        return work.run(body)
    except Exception:  # noqa: BLE001 - a bug answers 500 (clients retry) instead of dropping the connection
        _log.exception("HTTP request failed")
        return Response(500, b'{"error": "internal error"}')


def _closing(response: Response) -> Response:
    return Response(response.status, response.body, response.content_type, response.headers, close=True)


async def _send(send: Any, response: Response) -> None:
    headers = [
        (b"Content-Type", response.content_type.encode()),
        (b"Content-Length", str(len(response.body)).encode()),
    ]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    if response.close:
        headers.append((b"Connection", b"close"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
