"""The CLI through a running collector's admin API: `--admin`, and `--data-dir` of an owned directory."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest

from tests.cli.seed_store import make_calls, make_steps
from tests.cli.test_reports import _expected_by_tenant, _json_lines, tokenbook
from tokenbook.collector.admin import AdminServer
from tokenbook.collector.config import AdminConfig
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.query.api import AdminQueryClient, decode_result, encode_result
from tokenbook.collector.storage.owner import claim, release
from tokenbook.collector.storage.store import StoreError


@pytest.fixture(scope="module")
def admin(database_pool):
    """A real admin server over a seeded store in this process; yields its `host:port`."""
    with database_pool.store() as store:
        calls = make_calls()
        store.write(calls, make_steps(calls))
        store.refresh_aggregates()
        server = AdminServer(
            AdminConfig("127.0.0.1:0", 10.0, 100_000), store, IngestMetrics(), ready=lambda: (True, "")
        )
        server.start()
        try:
            yield f"127.0.0.1:{server.port}"
        finally:
            server.stop()


@pytest.mark.e2e  # starts a process
def test_sql_through_admin(admin):
    query = "SELECT tenant_id, count() AS calls, sum(total_cost) AS cost FROM v_calls GROUP BY tenant_id"
    rows = _json_lines(tokenbook("sql", query, "--admin", admin, "--format", "json").stdout)
    assert {r["tenant_id"]: (r["calls"], Decimal(r["cost"])) for r in rows} == _expected_by_tenant()
    refused = tokenbook("sql", "DROP TABLE llm_calls", "--admin", admin, check=False)
    assert refused.returncode == 1 and "only SELECT" in refused.stderr


@pytest.mark.e2e  # starts a process
def test_owned_data_dir_reads_through_the_collector(admin, tmp_path):
    claim(tmp_path, admin)  # this (live) test process "owns" the directory; it holds no chDB files
    try:
        rows = _json_lines(tokenbook("report", "--data-dir", str(tmp_path), "--format", "json").stdout)
        assert {r["tenant"]: (r["calls"], Decimal(r["total_cost"])) for r in rows} == _expected_by_tenant()
        # reprice goes to the owner too (this bare admin server has no re-pricer: test_reports_live.py)
        proc = tokenbook("reprice", "--since", "1d", "--data-dir", str(tmp_path), check=False)
        assert proc.returncode == 1 and "unknown path /v1/reprice" in proc.stderr
    finally:
        release(tmp_path)


def test_client_decodes_exact_types(admin):
    client = AdminQueryClient(admin)
    columns, _, rows = client.query_readonly(
        "SELECT {d:Decimal(18, 12)} AS d, {t:DateTime64(6, 'UTC')} AS t, "
        "CAST(NULL, 'Nullable(Decimal(38, 12))') AS n",
        {"d": Decimal("0.000000000001"), "t": datetime.fromisoformat("2026-01-02T03:04:05.123456+00:00")},
    )
    assert columns == ["d", "t", "n"]
    assert rows == [
        (Decimal("0.000000000001"), datetime.fromisoformat("2026-01-02T03:04:05.123456+00:00"), None)
    ]
    with pytest.raises(StoreError, match="only SELECT"):
        client.query_readonly("INSERT INTO llm_calls (tenant_id) VALUES ('x')")


def test_encode_decode_roundtrip():
    when = datetime.fromisoformat("2026-01-02T03:04:05.000001+00:00")
    body = encode_result(
        ["cost", "at", "tags", "models", "ratio"],
        [
            "Nullable(Decimal(38, 12))",
            "DateTime64(6, 'UTC')",
            "Map(String, String)",
            "Array(String)",
            "Float64",
        ],
        [(Decimal("1.100000000000"), when, {"a": "b"}, ["m1"], float("nan"))],
    )
    assert json.loads(body)["rows"] == [["1.100000000000", when.isoformat(), {"a": "b"}, ["m1"], None]]
    _, _, rows = decode_result(body)
    assert rows == [(Decimal("1.100000000000"), when, {"a": "b"}, ["m1"], None)]
