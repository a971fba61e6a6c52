"""Reservations end to end: a real collector process, many parallel callers reserving over real HTTP
(`tokenbook.processor.reserve`) against one small hard quota, and the calls' spans sent by the real
SDK, `TokenbookSpanProcessor` and the official OTLP/HTTP exporter. The granted estimates never exceed
the limit; each reservation settles to its call's actual usage; an unsettled one expires and frees
its capacity; tenant-scoped tokens reserve for their tenant only."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.collector.collector_process import CollectorProcess
from tokenbook.processor import (
    Reservation,
    ReservationError,
    ReservationRefused,
    TokenbookSpanProcessor,
    reserve,
)

pytestmark = pytest.mark.e2e  # starts a collector process

LIMIT = 3000
ESTIMATE = 250  # LIMIT / ESTIMATE = 12 reservations fit
CALLERS = 24


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    budgets = {
        "quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": LIMIT}, "enforcement": "hard"}],
        "reservations": {"ttl": "1m", "max_ttl": "5m"},
    }
    c = CollectorProcess(tmp_path_factory.mktemp("reservations") / "data", budgets=budgets).start()
    yield c
    if c.proc is not None:
        assert c.stop() == 0


def admin(c: CollectorProcess) -> str:
    return c.admin_url.removeprefix("http://")


def quota(c: CollectorProcess, tenant: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{c.admin_url}/v1/budgets?tenant={tenant}", timeout=10) as r:
        (daily,) = json.loads(r.read())["quotas"]
    assert isinstance(daily, dict)
    return daily


def refusal(**kwargs: Any) -> ReservationError:
    """The error of a reservation that must not be granted."""
    try:
        with reserve(**kwargs):
            pass
    except ReservationError as exc:
        return exc
    raise AssertionError(f"reservation {kwargs} was granted")


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.1)


def test_parallel_callers_never_overrun_the_limit_and_settle_to_actual_spend(
    collector: CollectorProcess,
) -> None:
    exporter = OTLPSpanExporter(endpoint=collector.http_url)
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    provider.add_span_processor(TokenbookSpanProcessor(SimpleSpanProcessor(exporter)))
    tracer = provider.get_tracer("reservations-e2e")
    start = threading.Barrier(CALLERS)
    granted: list[Reservation] = []
    refused: list[ReservationRefused] = []
    actual: dict[str, int] = {}
    lock = threading.Lock()

    def caller(n: int) -> None:
        start.wait()
        try:
            with reserve(tokens=ESTIMATE, tenant="acme", context=f"job-{n}", admin=admin(collector)) as r:
                with lock:
                    granted.append(r)
                start_made.wait()  # every caller has its answer before any call is made
                used = (60 + n, 40 + 2 * n)  # below the estimate: the difference is released
                with tracer.start_as_current_span(
                    "chat gpt-4o",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.usage.input_tokens": used[0],
                        "gen_ai.usage.output_tokens": used[1],
                        "tenant.id": "acme",
                    },
                ):
                    pass
                with lock:
                    actual[r.id] = sum(used)
        except ReservationRefused as exc:
            with lock:
                refused.append(exc)
            start_made.wait()

    start_made = threading.Barrier(CALLERS)
    threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    provider.shutdown()

    assert len(granted) * ESTIMATE <= LIMIT and len(granted) == LIMIT // ESTIMATE
    assert len(refused) == CALLERS - len(granted)
    assert {e.status for e in refused} == {409} and all(e.denied_by == ["daily"] for e in refused)
    # Every granted reservation settles to what its call used; the counter holds the actual spend.
    wait_until(lambda: all(r.status()["state"] == "settled" for r in granted))
    states = {r.id: r.status() for r in granted}
    assert {rid: s["settled"]["tokens"] for rid, s in states.items()} == actual
    assert all(s["held"]["tokens"] == 0 and s["settled"]["calls"] == 1 for s in states.values())
    daily = quota(collector, "acme")
    assert daily["used"]["tokens"] == sum(actual.values()) and daily["held"]["tokens"] == 0
    assert daily["remaining"]["tokens"] == LIMIT - sum(actual.values())
    stored = collector.scalar(
        "SELECT sum(input_tokens + output_tokens) FROM v_calls WHERE tenant_id = 'acme' "
        "AND tags['tokenbook.reservation.id'] != ''"
    )
    assert stored == sum(actual.values())
    # The released difference is capacity again: what is left can be reserved, one token more cannot.
    left = LIMIT - sum(actual.values())
    assert isinstance(refusal(tokens=left + 1, tenant="acme", admin=admin(collector)), ReservationRefused)
    with reserve(tokens=left, tenant="acme", admin=admin(collector)) as last:
        assert last.answer["quotas"][0]["remaining"]["tokens"] == 0
        last.release()
    assert quota(collector, "acme")["held"]["tokens"] == 0


def test_an_unsettled_reservation_expires_and_frees_capacity(collector: CollectorProcess) -> None:
    tenant = "initech"
    with reserve(tokens=LIMIT, tenant=tenant, ttl="1s", admin=admin(collector)) as held:
        assert quota(collector, tenant)["remaining"]["tokens"] == 0
        refused = refusal(tokens=1, tenant=tenant, admin=admin(collector))
        assert isinstance(refused, ReservationRefused)
        assert refused.answer["quotas"][0]["held"]["tokens"] == LIMIT
    wait_until(lambda: held.status()["state"] == "expired", timeout=10)
    assert quota(collector, tenant)["held"]["tokens"] == 0
    with reserve(tokens=LIMIT, tenant=tenant, admin=admin(collector)) as again:
        assert again.answer["granted"] is True
        again.release()
    # An exception inside the block releases the reservation at once.
    with pytest.raises(RuntimeError), reserve(tokens=LIMIT, tenant=tenant, admin=admin(collector)) as failed:
        raise RuntimeError("the model call failed")
    assert failed.status()["state"] == "released"
    with urllib.request.urlopen(f"{collector.admin_url}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert 'tokenbook_reservations_total{outcome="expired"} 1' in metrics
    assert "tokenbook_reservations_open 0" in metrics


def test_bad_requests_and_unknown_ids_are_clear(collector: CollectorProcess) -> None:
    def post(body: bytes) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(f"{collector.admin_url}/v1/reservations", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert post(b'{"attributes": {"tenant": "acme"}, "cost": 0.5}') == (
        400,
        {"error": "invalid reservation: must be a decimal string or an integer (never a float: write "
         "'12.50'), got 0.5"},
    )  # fmt: skip
    assert post(b"not json")[0] == 400
    req = urllib.request.Request(f"{collector.admin_url}/v1/reservations/rsv_nope", method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(req, timeout=10)
    assert missing.value.code == 404
    assert "not reachable" in str(refusal(tokens=1, tenant="acme", admin="127.0.0.1:9"))


def test_tenant_tokens_reserve_and_import_for_their_tenant_only(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, admin_secret = "acme-gateway-token-0123456789", "acme-admin-token-0123456789"
    auth = {
        "enabled": True,
        "tokens": [
            {"sha256": hashlib.sha256(secret.encode()).hexdigest(), "tenant": "acme", "scopes": ["query"]},
            {
                "sha256": hashlib.sha256(admin_secret.encode()).hexdigest(),
                "tenant": "acme",
                "scopes": ["admin"],
            },
        ],
    }
    budgets = {"quotas": [{"name": "daily", "window": "1d", "limit": {"tokens": 100}, "enforcement": "hard"}]}
    c = CollectorProcess(tmp_path_factory.mktemp("reserve-auth") / "data", auth=auth, budgets=budgets).start()
    try:
        address = admin(c)
        assert ": 401 " in str(refusal(tokens=1, tenant="acme", admin=address))
        assert ": 403 " in str(refusal(tokens=1, tenant="globex", admin=address, token=secret))
        with reserve(tokens=10, tenant="acme", admin=address, token=secret) as r:
            assert r.status()["held"]["tokens"] == 10
        # Provider figures: the admin scope, for the token's own tenant only.
        row = {
            "provider": "openai", "kind": "usage", "source": "openai.usage.completions", "file": "u.json",
            "bucket_start": "2026-03-02T00:00:00+00:00", "bucket_end": "2026-03-03T00:00:00+00:00",
            "model": "gpt-4o", "token_type": "input", "tokens": 10,
        }  # fmt: skip

        def post(token: str, tenant: str) -> int:
            body = json.dumps({"tenant": tenant, "rows": [row]}).encode()
            headers = {"Authorization": f"Bearer {token}"}
            req = urllib.request.Request(
                f"{c.admin_url}/v1/reconcile", data=body, headers=headers, method="POST"
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        assert (post(secret, "acme"), post(admin_secret, "globex"), post(admin_secret, "acme")) == (
            403,
            403,
            200,
        )
        monkeypatch.setenv("TOKENBOOK_TOKEN", admin_secret)
        assert c.scalar("SELECT count() FROM provider_usage") == 1  # read as acme's admin: its own row
    finally:
        assert c.stop() == 0
