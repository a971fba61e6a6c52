"""The `budgets:` section: parsed into frozen typed config, every problem reported with its key path
together with the rest of the collector config; window boundaries in IANA time zones."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tokenbook.collector.budgets import WindowSpec
from tokenbook.collector.config import ConfigError, Secret, load_config

DATA = Path(__file__).resolve().parents[2] / "testdata" / "budgets"


def test_valid_config_has_every_key() -> None:
    b = load_config(DATA / "valid.yaml").budgets
    assert [q.name for q in b.quotas] == ["acme-daily", "per-user-hourly", "monthly"]
    daily, hourly, monthly = b.quotas
    assert daily.match == (("tenant", "acme"),) and daily.per == ("tenant",)
    assert daily.window == WindowSpec("1d", "Europe/Paris") and daily.enforcement == "hard"
    assert daily.limits.cost == Decimal("40.00") and daily.limits.tokens == 2_000_000
    assert hourly.per == ("tenant", "user") and hourly.at_risk == Decimal("0.9")
    assert monthly.per == ("tenant",) and monthly.at_risk == Decimal("0.8") and monthly.enforcement == "soft"
    (budget,) = b.budgets
    assert budget.kind == "budget" and budget.per == ("tenant", "context") and budget.window is None
    assert b.webhook is not None and b.webhook.secret == Secret("a-long-shared-secret-value")
    assert "a-long-shared" not in repr(b.webhook)
    assert (b.webhook.backoff, b.webhook.max_attempts, b.webhook.max_backoff) == (0.5, 5, 30.0)
    assert b.breaker.enabled and b.breaker.window == 60 and b.breaker.cooldown == 300
    assert b.breaker.max_tokens == 5_000_000 and b.context_ttl == 86_400


def test_defaults_without_a_budgets_section() -> None:
    b = load_config(None).budgets
    assert not b.enabled and b.rules == () and b.log and b.webhook is None and not b.breaker.enabled


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("invalid_window.yaml", "budgets.quotas[0].window: must be one of 1h, 1d, calendar_month, got '1w'"),
        ("invalid_timezone.yaml", "budgets.quotas[0].timezone: must be an IANA time zone"),
        ("invalid_no_limit.yaml", "budgets.budgets[0].limit: set tokens and/or cost"),
        ("invalid_float_money.yaml", "budgets.quotas[0].limit.cost: must be a decimal string"),
        ("invalid_match_key.yaml", "budgets.quotas[0].match.colour: must be one of tenant, user"),
    ],
)
def test_each_invalid_case_names_its_key(name: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / name)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(expected)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "invalid_many.yaml")
    paths = [p.split(":")[0] for p in info.value.problems]
    assert sorted(paths) == sorted(
        [
            "receivers.otlp.protocols.grpc.endpoint",
            "budgets.surprise",
            "budgets.at_risk",
            "budgets.quotas[0].enforcement",
            "budgets.quotas[0].limit.tokens",
            "budgets.quotas[1].name",
            "budgets.quotas[1].per[1]",
            "budgets.budgets[0].window",
            "budgets.alerts.webhook.url",
            "budgets.alerts.webhook.secret",
            "budgets.alerts.webhook.max_attempts",
            "budgets.breaker.enabled",
            "budgets.breaker.baseline",
        ]
    )


def _bounds(kind: str, tz: str, *ymdhm: int) -> tuple[str, str]:
    year, month, day, hour, minute = (*ymdhm, 0)[:5]
    start, end = WindowSpec(kind, tz).bounds(datetime(year, month, day, hour, minute, tzinfo=UTC))
    return start.isoformat(), end.isoformat()


def test_windows_follow_the_local_wall_clock() -> None:
    assert _bounds("1h", "UTC", 2026, 3, 10, 12, 34) == (
        "2026-03-10T12:00:00+00:00",
        "2026-03-10T13:00:00+00:00",
    )
    # Kolkata is UTC+5:30: its hours start at :30 UTC.
    assert _bounds("1h", "Asia/Kolkata", 2026, 3, 10, 12, 34) == (
        "2026-03-10T12:30:00+00:00",
        "2026-03-10T13:30:00+00:00",
    )
    # The day of the spring DST change in Paris lasts 23 hours.
    assert _bounds("1d", "Europe/Paris", 2026, 3, 29, 12) == (
        "2026-03-28T23:00:00+00:00",
        "2026-03-29T22:00:00+00:00",
    )
    assert _bounds("calendar_month", "America/New_York", 2026, 12, 31, 23) == (
        "2026-12-01T05:00:00+00:00",
        "2027-01-01T05:00:00+00:00",
    )
    spec = WindowSpec("calendar_month")
    start, _ = spec.bounds(datetime(2026, 3, 1, tzinfo=UTC))
    assert spec.previous(start)[0] == datetime(2026, 2, 1, tzinfo=UTC)


def test_rules_inherit_the_sections_at_risk(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "budgets:\n  at_risk: 0.5\n  quotas: [{name: q, window: 1h, limit: {tokens: 10}, at_risk: 0.7}]\n"
        "  budgets: [{name: b, limit: {cost: '1.00'}}]\n",
        encoding="utf-8",
    )
    b = load_config(cfg).budgets
    assert b.quotas[0].at_risk == Decimal("0.7") and b.budgets[0].at_risk == Decimal("0.5")
