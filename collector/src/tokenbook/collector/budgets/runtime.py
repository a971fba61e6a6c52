"""The budgets part of a running collector: evaluator + loop rules + alert dispatcher + a one-second
ticker.

`BudgetRuntime.start(store, pending)` rebuilds the counters and the loop rules' state (before the
writer starts), then starts delivering alerts; until then, with rules configured, `reserve` and
`query_states` raise `NotRebuilt` (the counters would answer from nothing); `observe` is the ingest
hook; `contexts_refreshed` is the store's hook for recomputed contexts (checked against the loop rules
on the ticker);
`query_states` answers the admin API's ``GET /v1/budgets`` and `reserve` / `reservation` / `release`
its ``/v1/reservations`` (the admin API maps their errors to HTTP); `prometheus` adds the budget
metrics to ``/metrics``; `stop` delivers queued alerts and joins.

In a fleet (``fleet=True``: the collector stores into a ClickHouse server that other collectors may
share) with ``budgets.fleet_sync`` > 0, the ticker also reconciles the counters and the breaker with
the ledger (`FleetSync`), crossings and trips are decided on those readings, and alerts are claimed
before delivery (`EventClaims`), so that collectors sharing one ClickHouse enforce and alert the
fleet's totals once. The claims and the `budget_events` sink use the store `start` is given (never a
store that is not connected yet).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs

from tokenbook.collector.budgets.alerts import AlertDispatcher, EventStore
from tokenbook.collector.budgets.claims import ClaimStore, EventClaims
from tokenbook.collector.budgets.config import (
    ATTRIBUTE_KEYS,
    TAG_PREFIX,
    BudgetsConfig,
    parse_currency,
    parse_money,
)
from tokenbook.collector.budgets.counters import CONFIRM_S
from tokenbook.collector.budgets.drift import DriftMonitor, ReconcileConfig
from tokenbook.collector.budgets.evaluator import BudgetEvaluator, RebuildResult, UsageSource
from tokenbook.collector.budgets.fleet import FleetSync, collector_id
from tokenbook.collector.budgets.loops import LoopWatch
from tokenbook.collector.budgets.webhook import WebhookSender
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.genai.configspec import duration, positive_int

__all__ = ["BudgetRuntime", "NotRebuilt"]

_log = logging.getLogger("tokenbook.collector.budgets")
_TICK_S = 1.0
_STORE_SHARE = 0.2  # of each tick, at most, for the budget queries of `_tick` (pooled connections)
DEFAULT_PAGE = 1000  # counters per GET /v1/budgets page
MAX_PAGE = 10_000


class NotRebuilt(RuntimeError):
    """The counters are not rebuilt from the ledger yet (the collector is starting): a reservation or a
    state would be answered from nothing. Retry shortly."""


class _Store(EventStore, UsageSource, ClaimStore, Protocol):
    """What the runtime needs of `tokenbook.collector.storage.store.Store`."""

    def decide(self) -> Sequence[Any]:
        """Run the decision pass over the calls stored since the last one (`Store.decide`)."""


class BudgetRuntime:
    """The collector's budgets: the evaluator, its alert dispatcher and the ticker that rolls windows."""

    def __init__(
        self,
        config: BudgetsConfig,
        store: _Store | None,
        *,
        clock: Callable[[], float] = time.time,
        reconcile: ReconcileConfig | None = None,
        fleet: bool = False,
        write_delay: float = 0.0,
    ) -> None:
        """`store`: where events are recorded (None: nowhere); `reconcile`: also check the imported
        provider figures for drift (`DriftMonitor`), alerting through the same sinks; `fleet`: other
        collectors may share the store; `write_delay`: how long an accepted call may wait before it is
        written (``storage.batch.max_delay``), part of the span of readings that confirms a crossing
        in a fleet."""
        self.config = config
        self.collector_id = collector_id()
        webhook = WebhookSender(config.webhook) if config.webhook is not None else None
        fleet = fleet and store is not None and config.fleet_sync > 0 and config.enabled
        self.dispatcher = AlertDispatcher(log=config.log, webhook=webhook, store=store)
        self.evaluator = BudgetEvaluator(
            config,
            publish=self.dispatcher.publish,
            clock=clock,
            fleet=fleet,
            confirm=config.fleet_sync + write_delay + CONFIRM_S,
        )
        self.drift = (
            DriftMonitor(reconcile, publish=self.dispatcher.publish, clock=clock)
            if reconcile is not None
            else None
        )
        self.loops = LoopWatch(config, publish=self.dispatcher.publish, clock=clock)
        self.claims: EventClaims | None = None
        self.fleet: FleetSync | None = None
        if fleet and store is not None:
            breaker = self.evaluator.breaker
            related = breaker.overlapping_trips if breaker is not None else None
            self.claims = self.dispatcher.claims = EventClaims(store, self.collector_id, related=related)
            self.fleet = FleetSync(self.evaluator, config.fleet_sync, clock=clock)
        self._tick_s = min(_TICK_S, config.fleet_sync) if self.fleet is not None else _TICK_S
        self._source: UsageSource | None = None
        self._store: _Store | None = None
        self._stop = threading.Event()
        self._rebuilt = threading.Event()  # `start` is done: the counters hold the ledger's usage
        self._ticker = threading.Thread(target=self._tick, name="tokenbook-budget-ticker", daemon=True)

    def start(self, source: _Store | None, pending: Iterable[CallRow] = ()) -> RebuildResult | None:
        """Rebuild from `source` (None: start empty), then start alert delivery and the ticker (once:
        a second call only rebuilds). From here on events are recorded and claimed in `source` (the
        connected store)."""
        result = None
        self._source = self._store = source
        if source is not None:
            if self.dispatcher.store is not None:
                self.dispatcher.store = source
            if self.claims is not None:
                self.claims.store = source
        if self.fleet is not None:  # unstored calls of the log: counted from memory until stored
            pending = list(pending)
            self.fleet.note(pending)
        if source is not None and self.config.enabled:
            try:
                result = self.evaluator.rebuild(source, pending)
            except RuntimeError as exc:  # StoreError: serve (and count) anyway, from zero
                _log.error("budget counters could not be rebuilt from storage; starting from zero: %s", exc)
                self.evaluator.errors += 1
                result = None
            try:
                sent = self.loops.rebuild(source)
                if sent:
                    _log.info(
                        "loop crossings never recorded were sent at start", extra={"fields": {"sent": sent}}
                    )
            except RuntimeError as exc:  # StoreError: the crossings are found as contexts are recomputed
                _log.error("loop rules could not be restored from storage: %s", exc)
                self.loops.errors += 1
        if result is not None:
            _log.info(
                "budget counters rebuilt from the ledger",
                extra={"fields": {"budget_" + k: v for k, v in vars(result).items()}},
            )
        # a start retried after a failed bring-up rebuilds only; one that ends after `stop` (a long
        # rebuild at the collector's start) starts nothing
        if not self._ticker.is_alive() and not self._stop.is_set():
            self.dispatcher.start()
            self._ticker.start()
            if self.drift is not None and source is not None:
                self.drift.start(source)
        self._rebuilt.set()
        return result

    def _check_rebuilt(self) -> None:
        """Raise `NotRebuilt` while rules are configured and `start` has not rebuilt the counters."""
        if self.config.enabled and not self._rebuilt.is_set():
            raise NotRebuilt(
                "the budget counters are being rebuilt from the ledger (the collector is starting); "
                "retry shortly"
            )

    def check_drift(self) -> None:
        """Check the provider figures for drift soon (called after an import)."""
        if self.drift is not None:
            self.drift.trigger()

    @property
    def counting(self) -> bool:
        """Whether `observe` counts calls now (else the caller need not produce them)."""
        return self._active

    @property
    def _active(self) -> bool:
        """Whether calls are to be evaluated: rules or the breaker, or open reservations to settle."""
        return self.config.enabled or len(self.evaluator.reservations) > 0

    def observe(self, calls: Sequence[CallRow]) -> None:
        """Count stored calls (called by the writer after each insert); never blocks on delivery."""
        if self._active:
            self.evaluator.observe(calls)
            if self.fleet is not None:
                self.fleet.note(calls)

    def defer(self, calls: Sequence[CallRow]) -> None:
        """New calls that may be re-deliveries the dedup memory forgot: counted once the ledger shows
        they were not ingested before (`BudgetEvaluator.defer`). In a fleet they are counted at once:
        the next reconciliation counts each span once anyway."""
        if self.fleet is not None:
            self.observe(calls)
        elif self._active:
            self.evaluator.defer(calls)

    def apply_decisions(self, changes: Sequence[tuple[CallRow, CallRow]]) -> None:
        """Billing decisions of the store's decision pass (`BudgetEvaluator.apply_decisions`)."""
        if self._active:
            self.evaluator.apply_decisions(changes)
            if self.fleet is not None:
                self.fleet.note_decisions(changes)

    def reserve(self, doc: Any) -> tuple[str, dict[str, Any]]:
        """``POST /v1/reservations``: validate the JSON body and reserve (`BudgetEvaluator.reserve`).

        The body: ``{"attributes": {"tenant": ..., "context": ..., ...}, "tokens": N, "cost": "0.05",
        "currency": "USD", "ttl": "2m", "calls": 1}`` (tokens and/or cost; currency, ttl and calls
        optional). Returns (outcome, document). Raises ValueError naming what is wrong, `NotRebuilt`
        before `start`.
        """
        if not isinstance(doc, dict):
            raise ValueError(
                'the body must be a JSON object: {"attributes": {...}, "tokens": N, "cost": "0.05"}'
            )
        unknown = set(doc) - {"attributes", "tokens", "cost", "currency", "ttl", "calls"}
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        attributes = doc.get("attributes")
        if not isinstance(attributes, dict) or not attributes:
            raise ValueError('attributes must be an object of attribution keys, e.g. {"tenant": "acme"}')
        for key, value in attributes.items():
            if key not in ATTRIBUTE_KEYS and not (key.startswith(TAG_PREFIX) and len(key) > len(TAG_PREFIX)):
                raise ValueError(
                    f"attributes: unknown key {key!r}: use {', '.join(ATTRIBUTE_KEYS)} or tags.<key>"
                )
            if not isinstance(value, str) or not value:
                raise ValueError(f"attributes.{key}: must be a non-empty string")
        if doc.get("tokens") is None and doc.get("cost") is None:
            raise ValueError("reserve tokens and/or cost")
        cfg = self.config.reservations
        try:
            tokens = None if doc.get("tokens") is None else positive_int(doc["tokens"])
            cost = None if doc.get("cost") is None else parse_money(doc["cost"])
            currency = parse_currency(doc.get("currency", "USD"))
            ttl = cfg.ttl if doc.get("ttl") is None else duration(doc["ttl"])
            calls = positive_int(doc.get("calls", 1))
        except ValueError as exc:
            raise ValueError(f"invalid reservation: {exc}") from None
        if ttl > cfg.max_ttl:
            raise ValueError(f"ttl: at most budgets.reservations.max_ttl ({cfg.max_ttl:g} s)")
        self._check_rebuilt()
        return self.evaluator.reserve(
            attributes, tokens=tokens, cost=cost, currency=currency, ttl=ttl, calls=calls
        )

    def reservation(self, reservation_id: str) -> dict[str, Any] | None:
        """``GET /v1/reservations/<id>``: the reservation's document, or None when unknown."""
        res = self.evaluator.reservation(reservation_id)
        return None if res is None else res.doc()

    def release(self, reservation_id: str) -> dict[str, Any] | None:
        """``DELETE /v1/reservations/<id>``: release it; its document, or None when unknown."""
        res = self.evaluator.release(reservation_id)
        return None if res is None else res.doc()

    def contexts_refreshed(self, contexts: Iterable[tuple[str, str]]) -> None:
        """(tenant, context) pairs whose per-context aggregate the store recomputed (`Store.on_refreshed`):
        checked against the loop rules on the ticker. Never blocks on storage, never raises."""
        self.loops.touched(contexts)

    def query_states(self, query_string: str) -> dict[str, Any]:
        """The states a query string (``tenant=T[&context=C][&user=U...]``) asks for, as a JSON document.

        With attributes: `BudgetEvaluator.status`; with none: the current counters, one page of at most
        ``limit`` (default `DEFAULT_PAGE`, at most `MAX_PAGE`) from ``cursor`` (the previous page's
        ``next_cursor``; `states`). Raises ValueError naming an unknown or repeated parameter,
        `NotRebuilt` before `start`.
        """
        query: dict[str, str] = {}
        page = {"limit": DEFAULT_PAGE, "cursor": 0}
        for name, values in parse_qs(query_string, keep_blank_values=True).items():
            if name in page:
                if len(values) != 1 or not values[0].isdigit() or (name == "limit" and int(values[0]) < 1):
                    raise ValueError(f"parameter {name!r} must be given once, as an integer >= 0")
                page[name] = min(int(values[0]), MAX_PAGE)
                continue
            is_tag = name.startswith(TAG_PREFIX) and len(name) > len(TAG_PREFIX)
            if name not in ATTRIBUTE_KEYS and not is_tag:
                known = ", ".join(ATTRIBUTE_KEYS)
                raise ValueError(f"unknown parameter {name!r}: use {known} or tags.<key>")
            if len(values) != 1:
                raise ValueError(f"parameter {name!r} given {len(values)} times")
            query[name] = values[0]
        self._check_rebuilt()
        if not query:
            return self.evaluator.states(**page)
        doc = self.evaluator.status(query)
        loops = self.loops.status(query)
        doc["loops"] = loops
        hard = [e["rule"] for e in loops if e["enforcement"] == "hard"]
        if hard:
            doc["allowed"] = False
            doc["denied_by"] = doc["denied_by"] + hard
        return doc

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the ticker and deliver queued alerts, waiting at most `timeout` seconds for each."""
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout)
        if self.drift is not None:
            self.drift.stop(timeout)
        if not self.dispatcher.stop(timeout):
            _log.warning("budget alerts still queued at shutdown were not delivered")

    def _tick(self) -> None:
        while not self._stop.wait(self._tick_s):
            self.evaluator.tick()
            if self._source is not None:
                # Each query takes a pooled store connection and engine time the writer's inserts and
                # the refresh share: at most `_STORE_SHARE` of every tick goes to these (half of it first
                # to the re-delivery check), so a flood of new subjects never crowds out the ledger; the
                # rest waits for the next tick.
                started = time.monotonic()
                steps: tuple[tuple[Callable[[UsageSource, int], int], int, float, str], ...] = (
                    (self.evaluator.verify_pending, 2000, _STORE_SHARE / 2, "re-deliveries checked"),
                    (self.loops.check, 2000, _STORE_SHARE * 3 / 4, "loop rules checked"),
                    (self.evaluator.hydrate_pending, 10, _STORE_SHARE, "budget counters rebuilt"),
                )
                for step, batch, share, what in steps:
                    try:
                        while (
                            time.monotonic() - started < share * self._tick_s
                            and step(self._source, batch)
                            and not self._stop.is_set()
                        ):
                            pass
                    except RuntimeError as exc:  # StoreError: retried at the next tick
                        _log.warning("%s: storage failed: %s", what, exc)
                if self.fleet is not None and self._store is not None and self.fleet.due():
                    try:
                        # settle the billing of what this collector stored (a call recorded twice,
                        # by spans stored by two collectors) before reading the fleet's usage
                        self._store.decide()
                        self.fleet.sync(self._store)
                    except Exception as exc:  # noqa: BLE001 - the live counters stay; retried next tick
                        self.fleet.failures += 1
                        _log.warning("budget counters could not be reconciled with the ledger: %s", exc)

    def prometheus(self) -> str:
        """Budget metrics in the Prometheus text format (appended to the admin API's ``/metrics``)."""
        alerts, failures = self.dispatcher.snapshot()
        lines = [
            "# HELP tokenbook_budget_alerts_total Budget alerts (state crossings, breaker trips and resets)",
            "# TYPE tokenbook_budget_alerts_total counter",
        ]
        lines += [
            f'tokenbook_budget_alerts_total{{kind="{kind}",state="{state}"}} {n}'
            for (kind, state), n in sorted(alerts.items())
        ]
        lines += [
            "# HELP tokenbook_budget_alert_failures_total Alert deliveries that failed, by sink",
            "# TYPE tokenbook_budget_alert_failures_total counter",
        ]
        lines += [
            f'tokenbook_budget_alert_failures_total{{sink="{s}"}} {n}' for s, n in sorted(failures.items())
        ]
        lines += [
            "# HELP tokenbook_budget_counters Quota and budget counters in memory, by state",
            "# TYPE tokenbook_budget_counters gauge",
        ]
        lines += [
            f'tokenbook_budget_counters{{state="{s}"}} {n}'
            for s, n in self.evaluator.counter_states().items()
        ]
        ev = self.evaluator
        lines += [
            "# HELP tokenbook_budget_out_of_window_calls_total Calls older than a quota's previous window",
            "# TYPE tokenbook_budget_out_of_window_calls_total counter",
            f"tokenbook_budget_out_of_window_calls_total {ev.out_of_window_calls}",
            "# HELP tokenbook_budget_evicted_total Counters evicted from memory (budgets.max_subjects)",
            "# TYPE tokenbook_budget_evicted_total counter",
            f"tokenbook_budget_evicted_total {ev.evicted}",
            "# HELP tokenbook_budget_redelivered_total Calls the dedup memory had forgotten, found in the "
            "ledger and not counted again",
            "# TYPE tokenbook_budget_redelivered_total counter",
            f"tokenbook_budget_redelivered_total {ev.redelivered}",
            "# HELP tokenbook_budget_unverified_total Possibly re-delivered calls counted unchecked "
            "(queue full)",
            "# TYPE tokenbook_budget_unverified_total counter",
            f"tokenbook_budget_unverified_total {ev.unverified}",
            "# HELP tokenbook_budget_errors_total Batches the budget evaluator failed on (logged)",
            "# TYPE tokenbook_budget_errors_total counter",
            f"tokenbook_budget_errors_total {ev.errors + self.loops.errors}",
            "# HELP tokenbook_budget_loop_checks_pending Recomputed contexts waiting for the loop rules",
            "# TYPE tokenbook_budget_loop_checks_pending gauge",
            f"tokenbook_budget_loop_checks_pending {self.loops.pending}",
            "# HELP tokenbook_budget_loop_checks_dropped_total Contexts dropped from a full loop-check queue",
            "# TYPE tokenbook_budget_loop_checks_dropped_total counter",
            f"tokenbook_budget_loop_checks_dropped_total {self.loops.dropped}",
            "# HELP tokenbook_reservations_open Reservations holding an estimate now",
            "# TYPE tokenbook_reservations_open gauge",
            f"tokenbook_reservations_open {len(ev.reservations)}",
            "# HELP tokenbook_reservations_total Reservations by outcome (granted, refused, settled, "
            "released, expired)",
            "# TYPE tokenbook_reservations_total counter",
        ]
        outcomes = dict(ev.reservations.outcomes)
        lines += [
            f'tokenbook_reservations_total{{outcome="{o}"}} {outcomes.get(o, 0)}'
            for o in ("granted", "refused", "settled", "released", "expired")
        ]
        if self.fleet is not None and self.claims is not None:
            last = self.fleet.last
            lines += [
                "# HELP tokenbook_budget_fleet_sync_failures_total Failed reconciliations with the ledger",
                "# TYPE tokenbook_budget_fleet_sync_failures_total counter",
                f"tokenbook_budget_fleet_sync_failures_total {self.fleet.failures}",
                "# HELP tokenbook_budget_fleet_remembered_spans Spans accepted, not yet seen stored",
                "# TYPE tokenbook_budget_fleet_remembered_spans gauge",
                f"tokenbook_budget_fleet_remembered_spans {0 if last is None else last.remembered}",
                "# HELP tokenbook_budget_alerts_claimed_elsewhere_total Alerts another collector delivered",
                "# TYPE tokenbook_budget_alerts_claimed_elsewhere_total counter",
                f"tokenbook_budget_alerts_claimed_elsewhere_total {self.claims.lost}",
                "# HELP tokenbook_budget_alerts_set_aside Alerts waiting behind another collector's claim",
                "# TYPE tokenbook_budget_alerts_set_aside gauge",
                f"tokenbook_budget_alerts_set_aside {self.claims.aside}",
                "# HELP tokenbook_budget_alerts_taken_over_total Alerts delivered after another "
                "collector's claim was never recorded",
                "# TYPE tokenbook_budget_alerts_taken_over_total counter",
                f"tokenbook_budget_alerts_taken_over_total {self.claims.taken_over}",
                "# HELP tokenbook_budget_alerts_unclaimed_total Alerts delivered without a claim "
                "(storage kept failing)",
                "# TYPE tokenbook_budget_alerts_unclaimed_total counter",
                f"tokenbook_budget_alerts_unclaimed_total {self.claims.unclaimed}",
            ]
        text = "\n".join(lines) + "\n"
        return text + (self.drift.prometheus() if self.drift is not None else "")
