"""Server mode with a tenant reader: a tenant-scoped query runs as the reader user with its tenant's role.

The HTTP test server cannot enforce roles or row policies (the engine behind it has no users): these
tests check, through a recording proxy in front of it, that every tenant-scoped query goes to the
server as the reader with the tenant's role (the HTTP interface's ``role`` parameter), that the query
filters still confine it, and that other queries do not use the reader. Against a real server
(``TOKENBOOK_TEST_CLICKHOUSE_URL``) the roles would have to exist: skipped there.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.cli.seed_store import make_calls
from tests.clickhouse_http.fixture import ENV_URL
from tests.loopback import serving_thread
from tokenbook.collector.storage.row_policies import tenant_role
from tokenbook.collector.storage.store import Store, StoreError

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(bool(os.environ.get(ENV_URL)), reason="a real server needs the roles created first"),
]


class RecordingProxy:
    """An HTTP proxy on 127.0.0.1 in front of `target`, recording the `role` parameter of each request."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self.requests: list[tuple[str, str]] = []  # (path, role)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                params = parse_qs(urlsplit(self.path).query)
                proxy.requests.append((self.path, params.get("role", [""])[0]))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                url = f"http://{proxy.target.hostname}:{proxy.target.port}{self.path}"
                request = urllib.request.Request(url, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, out, reply = response.status, response.read(), response.headers
                except urllib.error.HTTPError as exc:
                    status, out, reply = exc.code, exc.read(), exc.headers
                self.send_response(status)
                for k, v in reply.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serving_thread(self.server).start()

    def url(self, user: str) -> str:
        return f"http://{user}@127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(clickhouse_url: str) -> Iterator[RecordingProxy]:
    p = RecordingProxy(clickhouse_url)
    yield p
    p.close()


@pytest.fixture
def store(clickhouse_url: str, proxy: RecordingProxy) -> Iterator[Store]:
    """A migrated server store whose tenant reader is the (test server's) user through the proxy."""
    user = urlsplit(clickhouse_url).username or "default"
    with Store.open(
        clickhouse_url, database=f"tr_{uuid.uuid4().hex[:10]}", tenant_reader=proxy.url(user)
    ) as s:
        s.migrate()
        s.write(make_calls(30), [])
        yield s
        s.command(f"DROP DATABASE IF EXISTS {s.database}")


def test_a_tenant_query_runs_as_the_reader_with_the_tenant_role(store: Store, proxy: RecordingProxy) -> None:
    store.query_readonly("SELECT 1", tenant="globex")  # the reader's connection opens (its own requests)
    proxy.requests.clear()
    rows = store.query_readonly("SELECT DISTINCT tenant_id FROM v_calls", tenant="acme")[2]
    assert rows == [("acme",)]  # the query settings still confine it
    assert [role for _, role in proxy.requests] == [tenant_role(store.database, "acme")]
    proxy.requests.clear()
    assert len(store.query_readonly("SELECT DISTINCT tenant_id FROM v_calls")[2]) == 3
    assert proxy.requests == []  # an operator's query does not run as the reader


def test_the_reader_password_never_appears_in_errors(clickhouse_url: str, proxy: RecordingProxy) -> None:
    reader = proxy.url("reader:s3cret-reader-pw")
    with Store.open(clickhouse_url, database=f"tr_{uuid.uuid4().hex[:10]}", tenant_reader=reader) as s:
        s.migrate()
        with pytest.raises(StoreError) as caught:
            s.query_readonly("SELECT count() FROM v_calls", tenant="acme")
        assert "s3cret-reader-pw" not in str(caught.value)
        assert "s3cret-reader-pw" not in repr(s)
        s.command(f"DROP DATABASE IF EXISTS {s.database}")


def test_the_embedded_store_has_no_tenant_reader(tmp_path: object) -> None:
    with pytest.raises(StoreError, match="needs a ClickHouse server"):
        Store.open(data_dir=str(tmp_path), tenant_reader="http://reader:pw@127.0.0.1:1")
