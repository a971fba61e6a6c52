"""Limits: the per-tenant token bucket and the attribute limits (a fake clock: no timed assertions), and
the validation of the ``auth``, ``tls`` and ``limits`` config keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tokenbook.collector.config import ConfigError, load_config
from tokenbook.collector.limits import DEFAULT_LIMITS, AttributeLimits, TenantRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_tenant_has_its_own_bucket() -> None:
    clock = Clock()
    limiter = TenantRateLimiter(100, 200, clock=clock)
    assert limiter.admit({"acme": 150}) == 0
    wait = limiter.admit({"acme": 100})  # 50 left: 50 more tokens take 0.5 s
    assert wait == pytest.approx(0.5)
    assert limiter.admit({"globex": 200}) == 0  # a noisy neighbour does not drain others
    clock.now += 0.5
    assert limiter.admit({"acme": 100}) == 0


def test_a_refused_request_takes_nothing_from_any_tenant() -> None:
    clock = Clock()
    limiter = TenantRateLimiter(10, 100, clock=clock)
    assert limiter.admit({"a": 60}) == 0
    assert limiter.admit({"a": 60, "b": 10}) == pytest.approx(2.0)  # a lacks 20 spans at 10/s
    assert limiter.admit({"b": 100}) == 0  # b was not charged by the refused request


def test_a_request_larger_than_the_burst_runs_the_bucket_into_debt() -> None:
    clock = Clock()
    limiter = TenantRateLimiter(10, 100, clock=clock)
    assert limiter.admit({"a": 150}) == 0  # a full bucket admits it: 50 spans of debt
    assert limiter.admit({"a": 10}) == pytest.approx(6.0)  # 50 of debt + 10 needed, at 10/s
    clock.now += 6
    assert limiter.admit({"a": 10}) == 0


def test_buckets_are_bounded() -> None:
    limiter = TenantRateLimiter(1, 1, max_tenants=3, clock=Clock())
    for t in "abcde":
        assert limiter.admit({t: 1}) == 0
    assert limiter.admit({"a": 1}) == 0  # forgotten, hence full again
    assert limiter.admit({"e": 1}) > 0


def test_invalid_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        TenantRateLimiter(0, 10)


def test_attribute_value_limit() -> None:
    limits = AttributeLimits(max_attributes=4, max_value_length=8)
    assert limits.violation("tenant.id", "12345678") == ""
    assert "max_attribute_value_length=8" in limits.violation("tenant.id", "123456789")
    assert limits.violation("gen_ai.prompt", "x" * 100) == ""  # content follows the privacy mode
    assert limits.violation("gen_ai.usage.input_tokens", 10**12) == ""


def test_config_keys_of_auth_tls_and_limits_are_validated_with_their_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "auth": {"enabled": "yes", "tokens": [{"sha256": "nothex", "tenant": "acme"}]},
                "limits": {"max_attributes_per_span": 0, "tenant_rate": {"spans_per_second": -1}},
                "receivers": {
                    "otlp": {"protocols": {"grpc": {"tls": {"cert_file": str(tmp_path / "none.pem")}}}}
                },
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    message = str(info.value)
    for path in (
        "auth.enabled:",
        "auth.tokens: [0].sha256",
        "limits.max_attributes_per_span:",
        "limits.tenant_rate.spans_per_second:",
        "receivers.otlp.protocols.grpc.tls: cert_file",
        "; key_file: required",
    ):
        assert path in message, path
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"auth": {"enabled": True}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"auth\.tokens: at least one token"):
        load_config(empty)


def test_defaults_leave_auth_and_tls_off_and_limits_on() -> None:
    config = load_config(None)
    assert config.auth is None and config.grpc.tls is None and config.http.tls is None
    assert config.limits == DEFAULT_LIMITS and config.limits.rate_limiter() is None
