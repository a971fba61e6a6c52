"""Service tiers: the tier a span says its call was served at, and how the price catalog names it.

Providers price the same model differently by tier: OpenAI's ``flex`` and ``priority``, Google's
``flex`` and ``priority``, the batch APIs of OpenAI, Anthropic, Google and others at about half price.
`read_service_tier` reads the first present of `semconv.SERVICE_TIER` (the app's own
``tokenbook.service_tier``, then the tier the response reports, then the one the request asked for)
and normalizes it (`normalize_tier`):

* lower-cased and stripped, at most `MAX_TIER_LENGTH` characters;
* ``default`` (OpenAI), ``standard`` (Anthropic, Mistral) and ``on_demand`` (Groq's pay-as-you-go
  tier, which every answer of its API names) are the standard tier, `STANDARD`;
* ``auto`` (a request letting the provider choose) and an empty value decide nothing: the next name
  is tried, and a span that says nothing else has the tier ``""``, priced as standard;
* any other value is kept as it is (``flex``, ``priority``, ``batch``, ``scale``, ...).

`price_context` is the genai-prices request context that selects a tier's price variant
(``processing: batch`` for the batch tier, ``service_tier: <tier>`` otherwise). A non-standard tier
without a known price is never priced at the standard rate: see `tokenbook.genai.pricing.catalog`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tokenbook.genai import semconv

__all__ = [
    "BATCH",
    "MAX_TIER_LENGTH",
    "STANDARD",
    "is_standard",
    "normalize_tier",
    "price_context",
    "read_service_tier",
]

#: The standard (default) tier: the catalog's base prices.
STANDARD: Final = "standard"
#: Batch processing (the providers' batch APIs).
BATCH: Final = "batch"
#: Longer tier names are cut to this many characters.
MAX_TIER_LENGTH: Final = 32
_ALIASES: Final = {"default": STANDARD, "standard": STANDARD, "on_demand": STANDARD}
_UNDECIDED: Final = frozenset({"", "auto"})


def normalize_tier(value: object) -> str:
    """A tier value as the ledger records it (module rule); ``""`` when it decides nothing."""
    if value is None or isinstance(value, bool):
        return ""
    text = value if isinstance(value, str) else str(value)
    name = text.strip().lower()[:MAX_TIER_LENGTH]
    if name in _UNDECIDED:
        return ""
    return _ALIASES.get(name, name)


def read_service_tier(attrs: Mapping[str, object]) -> str:
    """The normalized tier of a span's attributes: the first `semconv.SERVICE_TIER` name that decides
    one, else ``""``. Never raises."""
    for key in semconv.SERVICE_TIER:
        value = attrs.get(key)
        if value is not None and (tier := normalize_tier(value)):
            return tier
    return ""


def is_standard(tier: str) -> bool:
    """Whether `tier` is priced at the catalog's base prices (the standard tier, or no tier said)."""
    return tier in ("", STANDARD)


def price_context(tier: str) -> dict[str, str] | None:
    """The genai-prices request context selecting `tier`'s price variant; None for the standard tier."""
    if is_standard(tier):
        return None
    if tier == BATCH:
        return {"processing": BATCH}
    return {"service_tier": tier}
