"""``--currency CODE --exchange-rates FILE``: reports and exports in another currency.

The rates file is `tokenbook.genai.pricing.exchange`'s format; each day's amounts are converted at that
day's rate, so a total never mixes currencies. A missing rate is an error naming the day and currency.
"""

from __future__ import annotations

import argparse

from tokenbook.genai.pricing.exchange import ExchangeRates
from tokenbook.genai.pricing.fields import currency_code

__all__ = ["target_currency"]


def target_currency(args: argparse.Namespace) -> tuple[str, ExchangeRates] | None:
    """The currency and rates `args` ask for, or None (the ledger's currency).

    Raises ValueError (`PriceConfigError` for a bad rates file) with what to fix.
    """
    if args.currency is None:
        if args.exchange_rates is not None:
            raise ValueError("--exchange-rates needs --currency CODE (the currency to convert to)")
        return None
    try:
        code = currency_code(args.currency)
    except ValueError as exc:
        raise ValueError(f"--currency {args.currency!r}: {exc}") from None
    if args.exchange_rates is None:
        raise ValueError(f"--currency {code} needs --exchange-rates FILE (dated rates, with their source)")
    return code, ExchangeRates.load(args.exchange_rates)
