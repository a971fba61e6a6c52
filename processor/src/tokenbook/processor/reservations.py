"""Reservations: hold a call's estimated cost against the collector's hard quotas and budgets first.

``with reserve(tokens=4000, tenant="acme", context="sess_1") as r:`` asks the collector's admin API
(``POST /v1/reservations``) to hold the estimate; the collector grants it only when every hard rule
that applies stays within its limit counting what is used, what other reservations hold and this
estimate, so parallel callers cannot overrun a limit between two checks. Refused, it raises
`ReservationRefused` (with the collector's answer: which rules, their states) before the call is made.

Granted, the block runs with the reservation ID in Baggage (``tokenbook.reservation.id``), which
`TokenbookSpanProcessor` copies onto the model spans started inside it; the collector settles the
reservation when such a call's span arrives (the call's actual usage counts, the rest of the estimate
is released). If the block raises, the reservation is released at once (``release_on_error``);
otherwise an unused reservation expires after its ``ttl``. `Reservation.release` releases it early.

The admin address is ``admin=`` or ``$TOKENBOOK_ADMIN`` (default ``127.0.0.1:4319``); with
authentication on, ``token=`` or ``$TOKENBOOK_TOKEN`` is sent as a bearer token (scope ``query``).
A collector that cannot be reached raises `ReservationError` (catch it to fail open).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from opentelemetry import baggage, context

from tokenbook.genai.semconv import TB

__all__ = [
    "ENV_ADMIN",
    "ENV_TOKEN",
    "Reservation",
    "ReservationError",
    "ReservationRefused",
    "reserve",
]

ENV_ADMIN: Final = "TOKENBOOK_ADMIN"
ENV_TOKEN: Final = "TOKENBOOK_TOKEN"
DEFAULT_ADMIN: Final = "127.0.0.1:4319"
_PATH: Final = "/v1/reservations"


class ReservationError(Exception):
    """The collector could not be asked (unreachable, or an answer that is not a reservation)."""


class ReservationRefused(ReservationError):
    """The collector refused the reservation: `status` 409 (a hard limit; `denied_by` names the rules)
    or 429 (the tenant's breaker is tripped, or too many reservations are open; `retry_after`)."""

    def __init__(self, status: int, answer: dict[str, Any], retry_after: int | None) -> None:
        self.status = status
        self.answer = answer
        self.denied_by: list[str] = list(answer.get("denied_by") or [])
        self.retry_after = retry_after
        why = ", ".join(self.denied_by) or answer.get("outcome") or "refused"
        super().__init__(f"reservation refused ({status}): {why}")


@dataclass
class Reservation:
    """A granted reservation: its `id`, what it holds, and the collector's answer."""

    id: str
    answer: dict[str, Any]
    admin: str
    token: str | None = field(default=None, repr=False)

    @property
    def expires_at(self) -> str:
        """When the collector releases it if no call settled it (ISO 8601)."""
        return str(self.answer["reservation"]["expires_at"])

    def status(self) -> dict[str, Any]:
        """The reservation as the collector has it now (open, settled, released or expired)."""
        return _request("GET", self.admin, f"{_PATH}/{self.id}", None, self.token)[1]

    def release(self) -> dict[str, Any]:
        """Release it now (it holds nothing after); returns its final state."""
        return _request("DELETE", self.admin, f"{_PATH}/{self.id}", None, self.token)[1]


def _request(
    method: str, admin: str, path: str, body: dict[str, Any] | None, token: str | None
) -> tuple[int, dict[str, Any], int | None]:
    """(status, JSON answer, Retry-After) of one admin API request; 409 and 429 are answers too."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{admin}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read()), None
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read())
        except ValueError:
            answer = {}
        retry = exc.headers.get("Retry-After")
        if exc.code in (409, 429) and isinstance(answer, dict):
            return exc.code, answer, int(retry) if retry and retry.isdigit() else None
        message = answer.get("error") if isinstance(answer, dict) else None
        raise ReservationError(
            f"collector admin API at {admin}: {exc.code} {message or exc.reason}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ReservationError(f"collector admin API at {admin} is not reachable: {exc}") from None


@contextmanager
def reserve(
    *,
    tokens: int | None = None,
    cost: str | Decimal | None = None,
    currency: str = "USD",
    ttl: str | float | None = None,
    calls: int = 1,
    admin: str | None = None,
    token: str | None = None,
    release_on_error: bool = True,
    **attributes: str,
) -> Iterator[Reservation]:
    """Reserve `tokens` and/or `cost` for the subject named by `attributes` (``tenant``, ``context``,
    ``user``, ``project``, ``team``, ``feature``, ``service``, ``tags.<key>`` via ``**{"tags.k": v}``)
    and run the block with the reservation ID in Baggage. `calls`: the billed calls that settle it;
    `ttl`: how long it holds unsettled (collector default when None). Money is a decimal string or a
    Decimal, never a float.

    Raises `ReservationRefused` when the collector refuses, `ReservationError` when it cannot be asked,
    ValueError for bad arguments (before any request).
    """
    if tokens is None and cost is None:
        raise ValueError("reserve(): give tokens and/or cost")
    if isinstance(cost, float):
        raise ValueError("reserve(cost=...): a decimal string or Decimal, never a float (write '0.05')")
    if not attributes or not all(isinstance(v, str) and v for v in attributes.values()):
        raise ValueError("reserve(): name the subject with non-empty attributes, e.g. tenant='acme'")
    body: dict[str, Any] = {"attributes": attributes, "currency": currency, "calls": calls}
    if tokens is not None:
        body["tokens"] = tokens
    if cost is not None:
        body["cost"] = str(cost)
    if ttl is not None:
        body["ttl"] = ttl
    address = admin or os.environ.get(ENV_ADMIN) or DEFAULT_ADMIN
    secret = token or os.environ.get(ENV_TOKEN) or None
    status, answer, retry_after = _request("POST", address, _PATH, body, secret)
    if status != 201 or not isinstance(answer.get("reservation"), dict):
        raise ReservationRefused(status, answer, retry_after)
    held = Reservation(str(answer["reservation"]["id"]), answer, address, secret)
    attached = context.attach(baggage.set_baggage(TB.RESERVATION_ID, held.id))
    try:
        yield held
    except BaseException:
        if release_on_error:
            with suppress(ReservationError):  # then it expires after its ttl
                held.release()
        raise
    finally:
        context.detach(attached)
