"""The collector process's price catalog, loaded when the process first prices a call itself.

With the default ``receivers.otlp.ack: logged`` the rows are built, and their calls priced, in the
row-building worker processes (`buildpool`), each with a catalog of its own. The collector process
prices a call only when it builds rows itself: while no worker runs (a record of the log replayed
before the first worker is up, none could start, or after the stop), with ``ack: built``, and when it
re-prices stored calls. The catalog (genai-prices: pydantic,
its HTTP client and its price data, ~12 MiB of the process) is therefore imported and built at the
first of those (`LazyCatalog`), not at start.

The price overrides file is read and checked at once, so a bad file still fails the start; the catalog
built later prices with the entries read then, as a catalog built at start would.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from tokenbook.genai.pricing.overrides import OverrideEntry, load_entries
from tokenbook.genai.pricing.rates import Quote
from tokenbook.genai.usage import Usage

if TYPE_CHECKING:  # loaded by `LazyCatalog.get`, on first use
    from tokenbook.genai.pricing.catalog import PriceCatalog

__all__ = ["CATALOG_MODULE", "LazyCatalog"]

#: The module of `PriceCatalog`, imported at the first price (it imports genai-prices).
CATALOG_MODULE = "tokenbook.genai.pricing.catalog"


class LazyCatalog:
    """A `PriceCatalog` of the price overrides file `overrides`, built at its first use. Thread-safe.

    A bad overrides file raises `PriceConfigError` here, as `PriceCatalog` would. `quote` and
    `context_window` are the catalog's (what `RowBuilder` asks); `get` is the catalog itself.
    """

    def __init__(self, overrides: str | Path | None = None) -> None:
        self.overrides: tuple[OverrideEntry, ...] = load_entries(overrides) if overrides else ()
        self._catalog: PriceCatalog | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the catalog has been built (by a first price, or `get`)."""
        return self._catalog is not None

    def get(self) -> PriceCatalog:
        """The catalog, built now if it is not yet (importing genai-prices: ~0.1 s the first time)."""
        catalog = self._catalog
        if catalog is None:
            with self._lock:
                catalog = self._catalog
                if catalog is None:
                    # Deliberately lazy (module docstring): the catalog's module is imported here.
                    module = importlib.import_module(CATALOG_MODULE)
                    catalog = self._catalog = module.PriceCatalog.with_entries(self.overrides)
        return catalog

    def quote(
        self,
        provider: str,
        model: str,
        usage: Usage,
        start_ns: int | None,
        *,
        cache_hit: bool = False,
        tier: str = "",
    ) -> Quote:
        """`PriceCatalog.quote`."""
        return self.get().quote(provider, model, usage, start_ns, cache_hit=cache_hit, tier=tier)

    def context_window(self, provider: str, model: str) -> int | None:
        """`PriceCatalog.context_window`."""
        return self.get().context_window(provider, model)
