"""A test double of ClickHouse's HTTP interface, with the real ClickHouse engine (chDB) behind it.

Tests only: the product never uses it. No modern ClickHouse server can be installed where tokenbook
is built, so this process lets the server code path (clickhouse-connect's HTTP client: bound
parameters in the URL or a multipart form, settings as URL parameters, Native results, raw inserts,
HTTP errors) run in the test suite. Everything a query *does* is done by the engine: parsing,
``{name:Type}`` parameter substitution (the ``param_<name>`` values are handed to chDB's query
parameters unchanged, so they are parsed as ClickHouse's HTTP handler parses them), settings
(applied with ``SET`` on a fresh engine connection per request), formats, errors. This module
only speaks HTTP the way ClickHouse's HTTP handler does (``src/Server/HTTPHandler.cpp``), for the
part clickhouse-connect uses:

- ``GET /ping`` and ``GET /`` without a query: ``Ok.``;
- queries from the ``query`` URL parameter followed by the POST body (joined by a newline, as
  ClickHouse does), or from a ``multipart/form-data`` body's ``query`` field; ``database``,
  ``default_format``, ``param_<name>``, ``query_id``, ``user``/``password``; every other URL parameter
  (except ClickHouse's reserved ones) is a setting. A GET request runs with ``readonly=2`` at least;
- ``INSERT ... FORMAT <f>`` / ``INSERT ... VALUES`` with inline data of any size (streamed to the
  engine with chDB's ``send_insert``), and ``Content-Encoding`` gzip, deflate, zstd, lz4 (frame) and
  br (when ``brotli`` is installed) request bodies;
- responses compressed when ``enable_http_compression=1`` and ``Accept-Encoding`` names a method;
- response headers ``X-ClickHouse-Query-Id``, ``X-ClickHouse-Format`` (for statements with a result
  set), ``X-ClickHouse-Timezone``, ``X-ClickHouse-Server-Display-Name``, ``X-ClickHouse-Summary``;
- errors as ClickHouse sends them: the engine's ``Code: N. DB::Exception: ... (NAME) (version V)``
  text, ``X-ClickHouse-Exception-Code: N`` and the HTTP status ClickHouse maps the code to
  (``exceptionCodeToHTTPStatus``: 403 for authentication, 400 for syntax, 404 for unknown
  tables, 408 for timeouts, else 500); several statements in one request are refused
  (``SYNTAX_ERROR``, "Multi-statements are not allowed") as ClickHouse does, though chDB would run them;
- HTTP basic auth, ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers or ``user``/``password``
  parameters, checked against ``--user``/``--password`` (default: user ``default``, no password);
- ``session_id``: one engine connection per session (``SET``, ``USE`` and temporary tables persist;
  URL settings apply to the one query), ``session_timeout`` (default 60 s), ``session_check``.

Not supported (answered with ClickHouse's ``NOT_IMPLEMENTED`` error, or ignored where noted):
external data (multipart file parts), ClickHouse's own compressed framing (``compress=1`` /
``decompress=1``), temporary tables in a session query that sets ``readonly`` (or comes by GET: it
runs on a fresh connection with the session's settings and database), progress headers and
``send_progress_in_http_headers`` (accepted and ignored), query cancellation when the client goes
away, ``KILL QUERY`` of an HTTP query, ``client_protocol_version`` (ignored: Native results carry no
block info, so clickhouse-connect's protocol probe settles on version 0), TLS, quotas, roles,
access rights (any authenticated user may do anything). Results are produced in full before the
response starts, so an error is always a whole error response, never a broken stream. Summary
headers carry the engine's read/written counts; ``result_rows`` is not known and is left out.

Run it as its own process (chDB allows one data directory per process)::

    python -m tests.clickhouse_http.server --data-dir DIR --port 0 [--port-file F]

It prints the bound port on stdout (and writes it to ``--port-file``), then serves until SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import email.policy
import gzip
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb

from tests.clickhouse_http.statement import SqlError, Statement, analyse

__all__ = ["ClickHouseHTTPServer", "main"]

#: ClickHouse's ``http_max_uri_size`` default: bound parameters travel in the URL.
MAX_URI_SIZE = 1024 * 1024
#: URL parameters ClickHouse's HTTP handler does not treat as settings.
RESERVED_PARAMS = frozenset(
    {
        "query", "compress", "decompress", "user", "password", "quota_key", "query_id", "stacktrace",
        "role", "buffer_size", "wait_end_of_query", "session_id", "session_timeout", "session_check",
        "client_protocol_version", "close_session", "database", "default_format",
    }
)  # fmt: skip
RESERVED_SUFFIXES = ("_format", "_types", "_structure")  # external data table descriptions
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ERROR = re.compile(r"Code: (\d+)\. (?:DB::Exception: )?(.*)", re.S)
_VERSION_TRAILER = re.compile(r"\s*\(version [^()]*(?:\([^()]*\))?\)\s*$")
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")

#: ClickHouse's ``exceptionCodeToHTTPStatus``, by symbolic error name.


def _each(names: str, status: int) -> dict[str, int]:
    return dict.fromkeys(names.split(), status)


_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **_each("UNKNOWN_USER WRONG_PASSWORD AUTHENTICATION_FAILED SET_NON_GRANTED_ROLE ACCESS_DENIED", 403),
    **_each(
        """BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE
        CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER
        CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6
        CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID DUPLICATE_COLUMN ILLEGAL_COLUMN
        UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST TOO_BIG_AST
        UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH
        VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE""",
        400,
    ),
    **_each(
        """UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE UNKNOWN_DATABASE
        UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION UNKNOWN_FORMAT
        UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE""",
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "CANNOT_SCHEDULE_TASK": 503,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "Native": "application/octet-stream",
    "RowBinary": "application/octet-stream",
    "Arrow": "application/octet-stream",
    "Parquet": "application/octet-stream",
}


def _content_type(fmt: str) -> str:
    if fmt in _CONTENT_TYPES:
        return _CONTENT_TYPES[fmt]
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt.startswith(("TabSeparated", "TSV")):
        return "text/tab-separated-values; charset=UTF-8"
    return "text/plain; charset=UTF-8"


# -- compression -----------------------------------------------------------------------------------


def _optional(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        return None


_lz4 = _optional("lz4.frame")
_zstd = _optional("backports.zstd") or _optional("compression.zstd")
_brotli = _optional("brotli")


def decompress(data: bytes, encoding: str) -> bytes:
    """The request body under its ``Content-Encoding`` (ClickHouse's HTTP input compression)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity", "none"):
        return data
    if encoding in ("gzip", "x-gzip"):
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "zstd" and _zstd is not None:
        return bytes(_zstd.decompress(data))
    if encoding == "lz4" and _lz4 is not None:
        return bytes(_lz4.decompress(data))
    if encoding == "br" and _brotli is not None:
        return bytes(_brotli.decompress(data))
    raise SqlError(89, "UNKNOWN_COMPRESSION_METHOD", f"Unknown HTTP compression method '{encoding}'")


def choose_encoding(accept: str) -> str | None:
    """ClickHouse's choice among the client's ``Accept-Encoding`` methods (zstd first)."""
    accept = accept.lower()
    for method, available in (
        ("zstd", _zstd is not None),
        ("br", _brotli is not None),
        ("lz4", _lz4 is not None),
        ("gzip", True),
        ("deflate", True),
    ):
        if available and method in accept:
            return method
    return None


def compress(data: bytes, method: str, level: int = 3) -> bytes:
    if method == "zstd":
        return bytes(_zstd.compress(data))
    if method == "br":
        return bytes(_brotli.compress(data))
    if method == "lz4":
        return bytes(_lz4.compress(data))
    if method == "gzip":
        return gzip.compress(data, compresslevel=level)
    return zlib.compress(data, level)


# -- engine ----------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def engine_error(exc: BaseException) -> SqlError:
    """The engine's exception as ClickHouse reports it (code, name, message without version trailer)."""
    text = str(exc)
    start = text.find("Code: ")
    match = _ERROR.match(text[start:]) if start >= 0 else None
    if match is None:
        return SqlError(1001, "STD_EXCEPTION", text.strip() or type(exc).__name__)
    message = _VERSION_TRAILER.sub("", match.group(2).strip())
    names = _ERROR_NAME.findall(message)
    return SqlError(int(match.group(1)), names[-1] if names else "", message)


@dataclass
class Session:
    conn: Any
    timeout: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class Outcome:
    """One executed statement: the response body and its headers' facts."""

    body: bytes
    output_format: str | None  # set when the statement has a result set
    summary: dict[str, str]


class ClickHouseHTTPServer(ThreadingHTTPServer):
    """The HTTP front end; one thread per connection, one engine connection per request (or session)."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        data_dir: Path,
        *,
        user: str = "default",
        password: str = "",
        display_name: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._root = chdb.connect(str(self.data_dir))  # keeps the engine open between requests
        row = self._root.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split("\t")
        self.version, self.timezone = row[0].strip(), row[1].strip()
        self.user, self.password = user, password
        self.display_name = display_name or socket.gethostname()
        self.verbose = verbose
        self._sessions: dict[str, Session] = {}
        self._running: set[str] = set()
        self._state = threading.Lock()
        super().__init__(address, Handler)

    def connect(self) -> Any:
        return chdb.connect(str(self.data_dir))

    def server_close(self) -> None:
        super().server_close()
        with self._state:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.conn.close()
        self._root.close()

    # -- sessions and query ids --------------------------------------------------------------------

    def session(self, session_id: str, timeout: float, check: bool) -> Session:
        now = time.monotonic()
        with self._state:
            for sid, old in list(self._sessions.items()):
                if now - old.last_used > old.timeout and not old.lock.locked():
                    del self._sessions[sid]
                    old.conn.close()
            found = self._sessions.get(session_id)
            if found is None:
                if check:
                    raise SqlError(372, "SESSION_NOT_FOUND", f"Session {session_id} not found")
                found = self._sessions[session_id] = Session(self.connect(), timeout)
            found.timeout = timeout
            found.last_used = now
            return found

    def close_session(self, session_id: str) -> None:
        with self._state:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.conn.close()

    def claim_query_id(self, query_id: str) -> None:
        with self._state:
            if query_id in self._running:
                raise SqlError(
                    216,
                    "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING",
                    f"Query with id = {query_id} is already running.",
                )
            self._running.add(query_id)

    def release_query_id(self, query_id: str) -> None:
        with self._state:
            self._running.discard(query_id)

    # -- execution ---------------------------------------------------------------------------------

    def execute(
        self,
        conn: Any,
        statement: Statement,
        *,
        database: str | None,
        settings: Mapping[str, str],
        params: Mapping[str, str],
        default_format: str,
        restore: bool,
    ) -> Outcome:
        """Run one statement on `conn` with the request's database, settings and parameters."""
        try:
            if database:
                conn.query(f"USE {_quote_identifier(database)}", "TabSeparated")
            snapshot = self._snapshot(conn, settings) if restore and settings else None
            try:
                if settings:
                    # One SET, `readonly` last: the request's own settings are checked against the
                    # connection's (not yet read-only) state, as ClickHouse checks URL settings.
                    ordered = sorted(settings.items(), key=lambda kv: kv[0] == "readonly")
                    conn.query("SET " + ", ".join(f"{k} = {_quote(v)}" for k, v in ordered), "TabSeparated")
                return self._run(conn, statement, params, default_format)
            finally:
                if snapshot is not None:
                    self._restore(conn, snapshot)
        except SqlError:
            raise
        except Exception as exc:
            raise engine_error(exc) from None

    def _run(
        self, conn: Any, statement: Statement, params: Mapping[str, str], default_format: str
    ) -> Outcome:
        if statement.insert_format is not None:
            inserter = conn.send_insert(statement.text.decode("utf-8"), statement.insert_format)
            try:
                view = memoryview(statement.data)
                for start in range(0, len(view), 1 << 20):
                    inserter.append(view[start : start + (1 << 20)])
                result = inserter.finish()
            finally:
                inserter.cancel()  # a no-op once finished
            return Outcome(
                b"",
                None,
                {
                    "written_rows": str(result.rows_written),
                    "written_bytes": str(result.bytes_written),
                    "elapsed_ns": str(int(result.elapsed * 1e9)),
                },
            )
        result = conn.query(statement.text, default_format, params=dict(params))
        body = bytes(result.bytes() or b"")
        fmt = statement.output_format or default_format
        summary = {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "written_rows": str(result.rows_written()),
            "written_bytes": str(result.bytes_written()),
            "result_bytes": str(len(body)),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        return Outcome(body, fmt if statement.has_result or body else None, summary)

    @staticmethod
    def copy_session_state(source: Any, target: Any) -> None:
        """Give `target` the changed settings and the current database of `source`."""
        try:
            result = source.query(
                "SELECT name, value FROM system.settings WHERE changed UNION ALL "
                "SELECT '', currentDatabase()",
                "JSONEachRow",
            )
            rows = [json.loads(line) for line in bytes(result.bytes()).splitlines()]
            changed = [f"{r['name']} = {_quote(r['value'])}" for r in rows if r["name"]]
            if changed:
                target.query("SET " + ", ".join(changed), "TabSeparated")
            database = next(r["value"] for r in rows if not r["name"])
            target.query(f"USE {_quote_identifier(database)}", "TabSeparated")
        except Exception as exc:
            raise engine_error(exc) from None

    @staticmethod
    def _snapshot(conn: Any, settings: Mapping[str, str]) -> dict[str, tuple[str, bool]]:
        result = conn.query(
            "SELECT name, value, changed FROM system.settings WHERE name IN {names:Array(String)}",
            "JSONEachRow",
            params={"names": "[" + ", ".join(_quote(k) for k in settings) + "]"},
        )
        snapshot = {k: ("", False) for k in settings}
        for line in bytes(result.bytes()).splitlines():
            row = json.loads(line)
            snapshot[row["name"]] = (row["value"], bool(row["changed"]))
        return snapshot

    @staticmethod
    def _restore(conn: Any, snapshot: Mapping[str, tuple[str, bool]]) -> None:
        for name, (value, changed) in snapshot.items():
            conn.query(f"SET {name} = {_quote(value) if changed else 'DEFAULT'}", "TabSeparated")


@dataclass
class Request:
    """One HTTP request, as ClickHouse's handler reads it."""

    method: str
    params: dict[str, str]
    headers: Mapping[str, str]  # by lower-case name
    body: bytes


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ClickHouseHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def handle_one_request(self) -> None:
        """The standard library's, with ClickHouse's URI limit (1 MiB) instead of 64 KiB."""
        try:
            self.raw_requestline = self.rfile.readline(MAX_URI_SIZE + 1)
            if len(self.raw_requestline) > MAX_URI_SIZE:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414, "The request URI is too long")
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            handler = getattr(self, "do_" + self.command, None)
            if handler is None:
                self.send_error(501, f"Unsupported method ({self.command!r})")
                return
            handler()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    # -- request reading ---------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = self.headers.get("Content-Length")
        if length is None:
            if self.command == "POST":
                raise SqlError(
                    381,
                    "HTTP_LENGTH_REQUIRED",
                    "The Transfer-Encoding is not chunked and there is no Content-Length header for POST "
                    "request",
                )
            return b""
        return self.rfile.read(int(length))

    def _request(self) -> Request:
        body = self._read_body()
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        if params.get("decompress", "0") not in ("", "0") or params.get("compress", "0") not in ("", "0"):
            raise SqlError(
                48,
                "NOT_IMPLEMENTED",
                "ClickHouse's compressed framing (compress/decompress) is not supported by this test server",
            )
        body = decompress(body, self.headers.get("Content-Encoding", ""))
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
            )
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if part.get_filename() is not None or not isinstance(name, str):
                    raise SqlError(
                        48, "NOT_IMPLEMENTED", "external data is not supported by this test server"
                    )
                payload = part.get_payload(decode=True)
                params[name] = payload.decode("utf-8") if isinstance(payload, bytes) else str(payload)
            body = b""
        return Request(self.command, params, {k.lower(): v for k, v in self.headers.items()}, body)

    def _credentials(self, request: Request) -> tuple[str, str]:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            user, _, password = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            return user, password
        if "x-clickhouse-user" in request.headers:
            return request.headers["x-clickhouse-user"], request.headers.get("x-clickhouse-key", "")
        return request.params.get("user", "default"), request.params.get("password", "")

    # -- serving -----------------------------------------------------------------------------------

    def _serve(self) -> None:
        path = urlsplit(self.path).path
        query_id = ""
        try:
            query_given = any(k == "query" for k, _ in parse_qsl(urlsplit(self.path).query))
            if path in ("/ping", "/replicas_status") or (
                path == "/" and self.command == "GET" and not query_given
            ):
                self._read_body()
                self._reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            if path != "/":
                self._read_body()
                raise SqlError(0, "", f"There is no handle {path}\n\nUse / or /ping for health checks.")
            request = self._request()
            query_id = request.params.get("query_id") or str(uuid.uuid4())
            self._authenticate(request)
            self.server.claim_query_id(query_id)
            try:
                outcome, timezone = self._execute(request, query_id)
            finally:
                self.server.release_query_id(query_id)
        except SqlError as exc:
            self._reply_error(exc, query_id)
            return
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": timezone,
            "X-ClickHouse-Server-Display-Name": self.server.display_name,
            "X-ClickHouse-Summary": json.dumps(outcome.summary, separators=(",", ":")),
            "Content-Type": _content_type(outcome.output_format)
            if outcome.output_format
            else "text/plain; charset=UTF-8",
        }
        if outcome.output_format:
            headers["X-ClickHouse-Format"] = outcome.output_format
        body = outcome.body
        if body and request.params.get("enable_http_compression", "0") in ("1", "true", "True"):
            method = choose_encoding(self.headers.get("Accept-Encoding", ""))
            if method is not None:
                level = int(request.params.get("http_zlib_compression_level", "3") or 3)
                body = compress(body, method, level)
                headers["Content-Encoding"] = method
        self._reply(200, body, headers)

    def _authenticate(self, request: Request) -> None:
        user, password = self._credentials(request)
        if user != self.server.user or password != self.server.password:
            raise SqlError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
            )

    def _execute(self, request: Request, query_id: str) -> tuple[Outcome, str]:
        params = request.params
        query = params.get("query", "").encode("utf-8")
        if request.body:
            query = query + b"\n" + request.body if query else request.body
        statement = analyse(query)
        settings: dict[str, str] = {}
        bound: dict[str, str] = {}
        for key, value in params.items():
            if key.startswith("param_"):
                bound[key[6:]] = value
            elif key and key not in RESERVED_PARAMS and not key.endswith(RESERVED_SUFFIXES):
                if not _SETTING_NAME.fullmatch(key):
                    raise SqlError(115, "UNKNOWN_SETTING", f"Unknown setting '{key}'")
                settings[key] = value
        if request.method == "GET" and settings.get("readonly", "0") in ("", "0"):
            settings["readonly"] = "2"  # ClickHouse: only read-only queries over GET
        timezone = settings.get("session_timezone") or self.server.timezone
        session_id = params.get("session_id", "")
        run = dict(
            database=params.get("database") or None,
            settings=settings,
            params=bound,
            default_format=params.get("default_format") or "TabSeparated",
        )
        if not session_id:
            conn = self.server.connect()
            try:
                return self.server.execute(conn, statement, restore=False, **run), timezone  # type: ignore[arg-type]
            finally:
                conn.close()
        timeout = float(params.get("session_timeout") or 60)
        session = self.server.session(session_id, timeout, params.get("session_check", "0") == "1")
        if not session.lock.acquire(blocking=False):
            raise SqlError(373, "SESSION_IS_LOCKED", f"Session {session_id} is locked by a concurrent client")
        try:
            if "readonly" in settings:
                # `readonly` cannot be lifted again on the session's connection: run on a fresh one
                # carrying the session's settings and database (not its temporary tables).
                conn = self.server.connect()
                try:
                    self.server.copy_session_state(session.conn, conn)
                    outcome = self.server.execute(conn, statement, restore=False, **run)  # type: ignore[arg-type]
                finally:
                    conn.close()
            else:
                outcome = self.server.execute(session.conn, statement, restore=True, **run)  # type: ignore[arg-type]
        finally:
            session.last_used = time.monotonic()
            session.lock.release()
        if params.get("close_session", "0") == "1":
            self.server.close_session(session_id)
        return outcome, timezone

    # -- responses ---------------------------------------------------------------------------------

    def _reply(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=10")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reply_error(self, exc: SqlError, query_id: str) -> None:
        message = str(exc)
        if exc.name and f"({exc.name})" not in message:
            message = f"{message.rstrip('. ')}. ({exc.name})"
        text = f"Code: {exc.code}. DB::Exception: {message} (version {self.server.version})\n"
        status = _STATUS_BY_NAME.get(exc.name, 404 if exc.code == 0 else 500)
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(exc.code),
            "X-ClickHouse-Server-Display-Name": self.server.display_name,
        }
        if query_id:
            headers["X-ClickHouse-Query-Id"] = query_id
        self._reply(status, text.encode("utf-8"), headers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True, help="the chDB directory this process owns")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--port-file", type=Path, help="also write the bound port here")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default=os.environ.get("CLICKHOUSE_TEST_PASSWORD", ""))
    parser.add_argument("--display-name")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = ClickHouseHTTPServer(
        (args.host, args.port),
        args.data_dir,
        user=args.user,
        password=args.password,
        display_name=args.display_name,
        verbose=args.verbose,
    )
    port = server.server_address[1]
    if args.port_file is not None:
        tmp = args.port_file.with_name(args.port_file.name + ".tmp")
        tmp.write_text(f"{port}\n", encoding="ascii")
        tmp.replace(args.port_file)
    print(port, flush=True)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
