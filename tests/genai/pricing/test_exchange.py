"""Exchange rates: validated YAML, one rounding per conversion, and a missing rate names its day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from tokenbook.genai.pricing.exchange import ExchangeRates, MissingRate
from tokenbook.genai.pricing.fields import PriceConfigError

RATES = """
source: "ECB euro reference rates, as euros per US dollar"
carry_forward_days: 2
rates:
  2026-01-30: {EUR: "0.9213", GBP: "0.7891"}
  2026-02-02: {EUR: "0.9240"}
"""


@pytest.fixture
def rates(tmp_path: Path) -> ExchangeRates:
    path = tmp_path / "rates.yaml"
    path.write_text(RATES)
    return ExchangeRates.load(path)


def test_convert_rounds_half_even_once(rates: ExchangeRates) -> None:
    amount = Decimal("0.000000000005")  # x 0.9213 = 0.0000000000046065: rounds to 5e-12
    assert rates.convert(amount, "USD", "EUR", date(2026, 1, 30)) == Decimal("0.000000000005")
    assert rates.convert(Decimal("10"), "USD", "EUR", date(2026, 1, 30)) == Decimal("9.213000000000")
    assert rates.convert(Decimal("1.5"), "USD", "USD", date(2020, 1, 1)) == Decimal("1.500000000000")
    assert rates.convert(Decimal("2.5"), "USD", "EUR", date(2026, 2, 2), Decimal("1")) == Decimal("2")


def test_carry_forward_and_missing_rates(rates: ExchangeRates) -> None:
    assert rates.rate("USD", "EUR", date(2026, 2, 1)) == Decimal("0.9213")  # Sunday: Friday's rate
    with pytest.raises(MissingRate) as info:
        rates.rate("USD", "GBP", date(2026, 2, 2))
    message = str(info.value)
    assert "no USD->GBP exchange rate for 2026-02-02" in message and "rates.yaml" in message
    assert "from 2026-01-30 to 2026-01-30" in message
    with pytest.raises(MissingRate, match="2026-03-01"):
        rates.rate("USD", "EUR", date(2026, 3, 1))
    with pytest.raises(MissingRate, match="converts from USD only: cannot convert EUR to GBP"):
        rates.rate("EUR", "GBP", date(2026, 1, 30))
    assert isinstance(MissingRate("x"), ValueError)


def test_every_problem_is_reported_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "base: usd\ncarry_forward_days: -1\ncolour: red\nrates:\n"
        '  2026-01-30: {EUR: 0.92, GBP: "-1", US: "1"}\n  soon: {EUR: "1"}\n  2026-02-02: []\n'
    )
    with pytest.raises(PriceConfigError) as info:
        ExchangeRates.load(path)
    errors = "\n".join(info.value.errors)
    for expected in (
        "source: required",
        "carry_forward_days: must be an integer >= 0",
        "colour: unknown key",
        "rates.2026-01-30.EUR: must be a positive decimal string",
        "rates.2026-01-30.GBP: must be a positive decimal string",
        "rates.2026-01-30.US: must be a 3-letter currency code",
        "rates.soon: must be a date",
        "rates.2026-02-02: must be a mapping of currency codes",
    ):
        assert expected in errors, (expected, errors)
    path.write_text('source: s\nrates:\n  2026-01-30: {USD: "1"}\n')
    with pytest.raises(PriceConfigError, match=r"rates.2026-01-30.USD: is the base currency"):
        ExchangeRates.load(path)
    with pytest.raises(PriceConfigError, match="cannot read"):
        ExchangeRates.load(tmp_path / "missing.yaml")
