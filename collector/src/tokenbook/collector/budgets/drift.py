"""Drift alerts: the provider's imported figures against the ledger, checked in the collector.

`DriftMonitor` reads ``v_reconcile_drift`` (`storage.drift`) for the last ``reconcile.lookback_days``
days, every ``reconcile.interval`` and right after each import through the admin API, for every
tenant scope that has provider figures. A day x provider x model whose tokens or cost drift by more
than ``reconcile.threshold`` of the larger figure, and by at least ``reconcile.min_tokens`` tokens or
``reconcile.min_cost`` (in USD), raises one alert: a `BudgetEvent` of kind ``reconcile`` (rule
``provider-drift``, state ``drift``, the provider's figures as ``used``, the ledger's as ``limit``,
the causes in its message) delivered like a budget alert (``budget_events``, the log line, the
webhook), and counted on ``/metrics``. Each subject alerts once (its event ID is derived from the
tenant scope, provider, model and day); the alerts already raised are read back from
``budget_events`` at the first check, so a restart repeats none.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as day_start
from decimal import Decimal
from typing import Any, Final

from tokenbook.collector.budgets.config import parse_money
from tokenbook.collector.budgets.evaluator import UsageSource
from tokenbook.collector.budgets.events import BudgetEvent
from tokenbook.collector.storage.drift import CAUSES, DriftSubject, beyond, drift_rows, subjects
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.genai.configspec import boolean, duration, positive_int, setting, type_name

__all__ = ["RULE", "STATE", "DriftMonitor", "ReconcileConfig", "drift_event"]

_log = logging.getLogger("tokenbook.collector.reconcile")
RULE: Final = "provider-drift"
STATE: Final = "drift"


@type_name("fraction in (0, 1)")
def _fraction(v: Any) -> Decimal:
    try:
        d = Decimal(str(v)) if isinstance(v, int | float | str) and not isinstance(v, bool) else None
    except ArithmeticError:
        d = None
    if d is None or not d.is_finite() or not 0 < d < 1:
        raise ValueError(f"must be a fraction in (0, 1), e.g. 0.05 for 5%, got {v!r}")
    return d


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    """The ``reconcile`` section: when the provider's figures and the ledger drift enough to alert."""

    enabled: bool = setting(True, parse=boolean, doc="Check the imported provider figures for drift.")
    threshold: Decimal = setting(
        Decimal("0.05"),
        parse=_fraction,
        type_doc="fraction",
        doc="Alert when a day x provider x model's tokens or cost differ by more than this fraction "
        "of the larger figure.",
    )
    min_cost: Decimal = setting(
        Decimal("1.00"), parse=parse_money, doc="... and by at least this much money (USD), for cost."
    )
    min_tokens: int = setting(
        10_000, parse=positive_int, doc="... and by at least this many tokens, for tokens."
    )
    interval: float = setting(3600.0, parse=duration, doc="Time between checks (and one after each import).")
    lookback_days: int = setting(35, parse=positive_int, doc="Days checked, up to today (UTC).")


def drift_event(subject: DriftSubject, now: datetime) -> BudgetEvent:
    """The alert of one drifting day x provider x model."""
    start = datetime.combine(subject.day, day_start(), tzinfo=UTC)
    causes = "; ".join(CAUSES[c] for c in subject.causes if c in CAUSES) or CAUSES["unexplained"]
    return BudgetEvent(
        event_time=now,
        kind="reconcile",
        rule=RULE,
        state=STATE,
        previous_state="",
        enforcement="soft",
        subject=(("tenant", subject.tenant_id), ("provider", subject.provider), ("model", subject.model)),
        window="1d",
        window_start=start,
        window_end=start + timedelta(days=1),
        used_tokens=subject.provider_tokens or 0,
        limit_tokens=subject.ledger_tokens,
        used_cost=subject.provider_cost if subject.provider_cost is not None else Decimal(0),
        limit_cost=subject.ledger_cost,
        currency="USD",
        detail=causes,
    )


class DriftMonitor:
    """Checks the drift on its own thread (`start`), after `trigger` and every ``interval``."""

    def __init__(
        self,
        config: ReconcileConfig,
        *,
        publish: Callable[[BudgetEvent], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._publish = publish
        self._clock = clock
        self._source: UsageSource | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tokenbook-drift", daemon=True)
        self._alerted: set[str] | None = None  # event IDs already raised (read at the first check)
        self._lock = threading.Lock()
        self.checks = 0
        self.errors = 0
        self.alerts: Counter[str] = Counter()  # provider -> alerts raised
        self.drifting: dict[str, int] = {}  # provider -> subjects beyond the threshold at the last check
        self.cost_drift: dict[str, Decimal] = {}  # provider -> provider cost - ledger cost, last check

    def start(self, source: UsageSource) -> None:
        """Check at once, then every ``interval`` and after each `trigger`, on a thread."""
        if not self.config.enabled:
            return
        self._source = source
        self._thread.start()

    def trigger(self) -> None:
        """Check soon (an import just changed the provider's figures)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (a check in progress finishes)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            assert self._source is not None
            try:
                self.check(self._source)
            except Exception as exc:  # noqa: BLE001 - storage errors of any kind: counted, retried next time
                self.errors += 1
                _log.warning("provider drift check failed (retried at the next check): %s", exc)
            self._wake.wait(self.config.interval)
            self._wake.clear()

    def check(self, source: UsageSource) -> list[BudgetEvent]:
        """One check: publish an alert for each newly drifting subject; returns them."""
        cfg = self.config
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        today = now.date()
        since = today - timedelta(days=cfg.lookback_days)
        db = source.database
        if self._alerted is None:
            start = datetime.combine(since, day_start(), tzinfo=UTC)
            _, _, rows = source.query(render_query("reconcile/alerted_events.sql", db), {"since": start})
            self._alerted = {str(r[0]) for r in rows}
        _, _, scopes = source.query(render_query("reconcile/alert_scopes.sql", db), {"since": since})
        events: list[BudgetEvent] = []
        drifting: Counter[str] = Counter()
        net: dict[str, Decimal] = {}
        for (scope,) in scopes:
            found = drift_rows(
                source.query, db, since=since, until=today + timedelta(days=1), tenant=str(scope)
            )
            for row in found:
                if row.cost_drift is not None:
                    net[row.provider] = net.get(row.provider, Decimal(0)) + row.cost_drift
            for subject in subjects(found):
                if not subject.causes or not self._beyond(subject):
                    continue
                drifting[subject.provider] += 1
                event = drift_event(subject, now)
                if event.event_id in self._alerted:
                    continue
                self._alerted.add(event.event_id)
                events.append(event)
        with self._lock:
            self.checks += 1
            self.drifting = dict(drifting)
            self.cost_drift = net
            for event in events:
                self.alerts[dict(event.subject)["provider"]] += 1
        for event in events:
            self._publish(event)
        return events

    def _beyond(self, s: DriftSubject) -> bool:
        cfg = self.config
        return beyond(s.provider_cost, s.ledger_cost, cfg.threshold, cfg.min_cost) or beyond(
            s.provider_tokens, s.ledger_tokens, cfg.threshold, Decimal(cfg.min_tokens)
        )

    def prometheus(self) -> str:
        """The drift metrics in the Prometheus text format (appended to ``/metrics``)."""
        with self._lock:
            alerts, drifting, net = dict(self.alerts), dict(self.drifting), dict(self.cost_drift)
            checks, errors = self.checks, self.errors
        providers = sorted(set(alerts) | set(drifting) | set(net))
        lines = [
            "# HELP tokenbook_reconcile_checks_total Drift checks of the provider figures against the ledger",
            "# TYPE tokenbook_reconcile_checks_total counter",
            f"tokenbook_reconcile_checks_total {checks}",
            "# HELP tokenbook_reconcile_check_errors_total Drift checks that failed (logged, retried)",
            "# TYPE tokenbook_reconcile_check_errors_total counter",
            f"tokenbook_reconcile_check_errors_total {errors}",
            "# HELP tokenbook_reconcile_alerts_total Drift alerts raised, by provider",
            "# TYPE tokenbook_reconcile_alerts_total counter",
        ]
        lines += [f'tokenbook_reconcile_alerts_total{{provider="{p}"}} {alerts.get(p, 0)}' for p in providers]
        lines += [
            "# HELP tokenbook_reconcile_drifting Days x models beyond the drift threshold at the last check",
            "# TYPE tokenbook_reconcile_drifting gauge",
        ]
        lines += [f'tokenbook_reconcile_drifting{{provider="{p}"}} {drifting.get(p, 0)}' for p in providers]
        lines += [
            "# HELP tokenbook_reconcile_cost_drift_usd Provider cost minus ledger cost over the days checked",
            "# TYPE tokenbook_reconcile_cost_drift_usd gauge",
        ]
        lines += [
            f'tokenbook_reconcile_cost_drift_usd{{provider="{p}"}} {net.get(p, Decimal(0)):f}'
            for p in providers
        ]
        return "\n".join(lines) + "\n"
