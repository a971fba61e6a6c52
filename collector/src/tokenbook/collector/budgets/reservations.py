"""Reservations: an estimate held against a subject's quotas and budgets before its call is made.

A gateway asks the collector to reserve the tokens and/or money a call may cost
(`BudgetEvaluator.reserve`); the evaluator grants it only if every applicable ``hard`` rule stays
within its limit counting what is used, what other reservations hold and the new estimate, all
under one lock, so concurrent callers can no longer overrun a limit between two checks. The app puts
the reservation ID on its spans (Baggage and span attribute ``tokenbook.reservation.id``); when a
billed call carrying it is counted, the same lock acquisition settles it: the call's actual usage is
counted as any call's, and the reservation holds only what is left of its estimate (nothing once its
``calls`` calls arrived). A reservation not settled within its ``ttl`` expires and holds nothing; one
may also be released early.

`ReservationBook` keeps the open reservations (at most ``max_open``; the caller refuses beyond), the
amounts they hold per (rule, subject), maintained incrementally, an expiry heap, and the most recently
closed reservations (as many as ``max_open``) so a caller can read how one ended. It is guarded by
the evaluator's lock.
"""

from __future__ import annotations

import heapq
import secrets
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "EXPIRED",
    "OPEN",
    "RELEASED",
    "SETTLED",
    "HeldKey",
    "Reservation",
    "ReservationBook",
    "new_reservation_id",
]

OPEN: Final = "open"
SETTLED: Final = "settled"
RELEASED: Final = "released"
EXPIRED: Final = "expired"
#: (rule index, subject values): the counter a reservation holds against, whatever its window.
HeldKey = tuple[int, tuple[str, ...]]
_ZERO: Final = Decimal(0)


def new_reservation_id() -> str:
    """A fresh reservation ID (``rsv_`` + 32 hex digits)."""
    return "rsv_" + secrets.token_hex(16)


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC).isoformat()


@dataclass(slots=True)
class Reservation:
    """One reservation: what it holds, against which counters, and what its calls used so far."""

    id: str
    attributes: dict[str, str]  # the attribution it was made for (tenant, context, ...)
    keys: tuple[HeldKey, ...]  # every applicable rule's counter: tokens are held against these
    cost_keys: tuple[HeldKey, ...]  # those whose limit is in the reservation's currency: cost held too
    tokens: int | None  # the estimate; None: no token estimate
    cost: Decimal | None
    currency: str
    calls: int  # billed calls that close it
    created: float  # clock seconds
    expires: float
    state: str = OPEN
    settled_tokens: int = 0
    settled_cost: Decimal = field(default_factory=Decimal)
    settled_calls: int = 0
    unpriced_calls: int = 0  # settled calls without a price (their cost is unknown, not 0)
    closed_at: float | None = None

    @property
    def held_tokens(self) -> int:
        """Tokens still held: the estimate less what its calls used (0 once closed)."""
        if self.state != OPEN or self.tokens is None:
            return 0
        return max(self.tokens - self.settled_tokens, 0)

    @property
    def held_cost(self) -> Decimal:
        """Money still held: the estimate less what its priced calls cost (0 once closed)."""
        if self.state != OPEN or self.cost is None:
            return _ZERO
        return max(self.cost - self.settled_cost, _ZERO)

    def doc(self) -> dict[str, Any]:
        """The reservation as the admin API shows it (money as exact decimal strings)."""
        return {
            "id": self.id,
            "state": self.state,
            "attributes": dict(self.attributes),
            "reserved": {"tokens": self.tokens, "cost": None if self.cost is None else str(self.cost)},
            "held": {"tokens": self.held_tokens, "cost": str(self.held_cost)},
            "settled": {
                "tokens": self.settled_tokens,
                "cost": str(self.settled_cost),
                "calls": self.settled_calls,
                "unpriced_calls": self.unpriced_calls,
            },
            "currency": self.currency,
            "calls": self.calls,
            "created_at": _iso(self.created),
            "expires_at": _iso(self.expires),
            "closed_at": _iso(self.closed_at),
        }


class ReservationBook:
    """Open reservations, what they hold per counter, and the recently closed ones. Not thread-safe:
    the evaluator calls it under its lock."""

    def __init__(self, max_open: int) -> None:
        self.max_open = max_open
        self._open: dict[str, Reservation] = {}
        self._closed: OrderedDict[str, Reservation] = OrderedDict()  # oldest first
        self._held_tokens: Counter[HeldKey] = Counter()
        self._held_cost: dict[HeldKey, Decimal] = {}
        self._expiry: list[tuple[float, str]] = []  # heap of (expires, id); closed ones skipped lazily
        self.outcomes: Counter[str] = Counter()  # granted, refused, settled, released, expired

    def __len__(self) -> int:
        return len(self._open)

    @property
    def full(self) -> bool:
        """Whether no further reservation may be opened."""
        return len(self._open) >= self.max_open

    def held(self, key: HeldKey) -> tuple[int, Decimal]:
        """(tokens, cost) the open reservations hold against one rule's subject."""
        return self._held_tokens.get(key, 0), self._held_cost.get(key, _ZERO)

    def get(self, reservation_id: str) -> Reservation | None:
        """An open or recently closed reservation."""
        return self._open.get(reservation_id) or self._closed.get(reservation_id)

    def add(self, res: Reservation) -> None:
        """Open `res` (the caller checked `full` and the limits)."""
        self._open[res.id] = res
        heapq.heappush(self._expiry, (res.expires, res.id))
        self._hold(res, res.held_tokens, res.held_cost)
        self.outcomes["granted"] += 1

    def settle(
        self, reservation_id: str, tokens: int, cost: Decimal | None, now: float, sign: int = 1
    ) -> bool:
        """Count one billed call of an open reservation (`sign` -1 takes one back, when a billing
        decision un-bills it); the reservation is settled once `calls` calls arrived. Returns whether
        the ID named an open reservation."""
        res = self._open.get(reservation_id)
        if res is None:
            return False
        before_tokens, before_cost = res.held_tokens, res.held_cost
        res.settled_tokens += sign * tokens
        res.settled_calls += sign
        if cost is None:
            res.unpriced_calls += sign
        else:
            res.settled_cost += sign * cost
        self._hold(res, res.held_tokens - before_tokens, res.held_cost - before_cost)
        if res.settled_calls >= res.calls:
            self.close(reservation_id, SETTLED, now)
        return True

    def close(self, reservation_id: str, state: str, now: float) -> Reservation | None:
        """Close an open reservation as `state` (settled, released, expired); it holds nothing after."""
        res = self._open.pop(reservation_id, None)
        if res is None:
            return None
        self._hold(res, -res.held_tokens, -res.held_cost)
        res.state = state
        res.closed_at = now
        self.outcomes[state] += 1
        self._closed[res.id] = res
        while len(self._closed) > self.max_open:
            self._closed.popitem(last=False)
        return res

    def expire(self, now: float) -> list[Reservation]:
        """Close every open reservation whose ttl is over; returns them."""
        out = []
        while self._expiry and self._expiry[0][0] <= now:
            _, reservation_id = heapq.heappop(self._expiry)
            res = self.close(reservation_id, EXPIRED, now)
            if res is not None:
                out.append(res)
        if len(self._expiry) > 4 * max(len(self._open), 1024):  # drop entries of closed reservations
            self._expiry = [(t, i) for t, i in self._expiry if i in self._open]
            heapq.heapify(self._expiry)
        return out

    def _hold(self, res: Reservation, tokens: int, cost: Decimal) -> None:
        if tokens:
            for key in res.keys:
                self._held_tokens[key] += tokens
                if self._held_tokens[key] <= 0:
                    del self._held_tokens[key]
        if cost:
            for key in res.cost_keys:
                held = self._held_cost.get(key, _ZERO) + cost
                if held > 0:
                    self._held_cost[key] = held
                else:
                    self._held_cost.pop(key, None)
