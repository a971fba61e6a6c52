"""The `budgets:` section of the collector config: quotas, budgets, alert sinks and the breaker.

A **quota** caps usage over a window (`1h`, `1d`, `calendar_month` in a time zone) for each subject
named by `per` (default: each tenant). A **budget** caps one execution: the calls of one context
(per tenant and context ID), with no window. Both have a `match` on attribution (tenant, user,
project, team, feature, service, or ``tags.<key>``), limits in tokens and/or money, an `at_risk`
threshold (a fraction of the limit, default 0.8) and an `enforcement` (`soft` alerts, `hard` also
tells gateways to refuse). A **loop rule** (`LoopRule`) watches the tool loops of each context: more
than `max_steps` model calls in one loop, or a prompt growing by more than `max_prompt_growth` tokens
per step, raises one ``loop`` crossing per context.

Each part is a frozen config class declared with `tokenbook.genai.configspec` (defaults and
descriptions beside the fields). `parse_budgets(raw, path)` validates the section and returns
``(BudgetsConfig, problems)``: every problem carries its full key path
(``budgets.quotas[0].window: must be one of ...``); `collector.config` composes `BudgetsConfig` into
the collector's config, so they are reported together with its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final, Self, TypeAlias
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tokenbook.collector.budgets.windows import WINDOW_KINDS, WindowSpec
from tokenbook.genai.configspec import (
    Invalid,
    Report,
    Secret,
    boolean,
    duration,
    duration_or_zero,
    items,
    load,
    optional_section,
    positive_int,
    section,
    setting,
    type_name,
)

__all__ = [
    "ATTRIBUTE_KEYS",
    "DEFAULT_AT_RISK",
    "LOOP_MATCH_KEYS",
    "AlertsConfig",
    "BreakerConfig",
    "BudgetRule",
    "BudgetsConfig",
    "Limits",
    "LoopRule",
    "QuotaRule",
    "ReservationsConfig",
    "Rule",
    "WebhookConfig",
    "parse_budgets",
    "parse_currency",
    "parse_money",
]

#: Match / per keys -> `CallRow` field. ``tags.<key>`` reads the call's tags map.
ATTRIBUTE_KEYS: Final = {
    "tenant": "tenant_id",
    "user": "user_id",
    "project": "project_id",
    "team": "team_id",
    "feature": "feature",
    "service": "service_name",
    "context": "context_id",
}
TAG_PREFIX: Final = "tags."
#: The match keys of a loop rule: the attribution the per-context aggregate (`context_costs`) keeps.
LOOP_MATCH_KEYS: Final = ("tenant", "user", "project", "feature")
DEFAULT_AT_RISK: Final = Decimal("0.8")
ENFORCEMENTS: Final = ("soft", "hard")
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")


# --- parsers ----------------------------------------------------------------------------------------


@type_name("decimal string")
def parse_money(v: Any) -> Decimal:
    """A positive amount of money from a decimal string or an integer (never a float)."""
    if isinstance(v, bool | float):
        raise ValueError(f"must be a decimal string or an integer (never a float: write '12.50'), got {v!r}")
    try:
        d = Decimal(v) if isinstance(v, int | str) else None
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite() or d <= 0:
        raise ValueError(f"must be a positive amount such as '12.50', got {v!r}")
    return d


@type_name("fraction in (0, 1]")
def _fraction(v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ValueError(f"must be a fraction of the limit in (0, 1], e.g. 0.8, got {v!r}")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise ValueError(f"must be a fraction of the limit in (0, 1], e.g. 0.8, got {v!r}") from None
    if not d.is_finite() or not 0 < d <= 1:
        raise ValueError(f"must be a fraction of the limit in (0, 1], e.g. 0.8, got {v!r}")
    return d


def _attribute_key(key: Any) -> str:
    if isinstance(key, str) and (key in ATTRIBUTE_KEYS or (key.startswith(TAG_PREFIX) and len(key) > 5)):
        return key
    known = ", ".join(k for k in ATTRIBUTE_KEYS if k != "context")
    raise ValueError(f"must be one of {known} or tags.<key>, got {key!r}")


@type_name("mapping of attribute key to value")
def _match(v: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, Mapping):
        raise ValueError("must be a mapping of attribute keys to values, e.g. {tenant: acme}")
    pairs: list[tuple[str, str]] = []
    problems: list[tuple[str, str]] = []
    for key, value in v.items():
        try:
            attribute = _attribute_key(key)
        except ValueError as exc:
            problems.append((str(key), str(exc)))
            continue
        if not isinstance(value, str) or not value:
            problems.append((attribute, f"must be a non-empty string, got {value!r}"))
            continue
        pairs.append((attribute, value))
    if problems:
        raise Invalid(problems)
    return tuple(pairs)


@type_name("attribute key or list of them")
def _per(v: Any) -> tuple[str, ...]:
    keys = [v] if isinstance(v, str) else v
    if not isinstance(keys, list):
        raise ValueError("must be an attribute key or a list of them, e.g. [tenant, user]")
    per: list[str] = []
    problems: list[tuple[str, str]] = []
    for i, key in enumerate(keys):
        try:
            per.append(_attribute_key(key))
        except ValueError as exc:
            problems.append((f"[{i}]", str(exc)))
    if problems:
        raise Invalid(problems)
    return tuple(per)


@type_name("name")
def _name(v: Any) -> str:
    if not isinstance(v, str) or not _NAME.fullmatch(v):
        raise ValueError(f"must be a name of letters, digits and _.:- (1-100), got {v!r}")
    return v


@type_name(" | ".join(WINDOW_KINDS))
def _window(v: Any) -> str:
    if v not in WINDOW_KINDS:
        raise ValueError(f"must be one of {', '.join(WINDOW_KINDS)}, got {v!r}")
    return str(v)


@type_name("IANA time zone")
def _timezone(v: Any) -> str:
    try:
        if not isinstance(v, str):
            raise ZoneInfoNotFoundError(v)
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"must be an IANA time zone such as Europe/Paris, got {v!r}") from None
    return v


@type_name("soft | hard")
def _enforcement(v: Any) -> str:
    if v not in ENFORCEMENTS:
        raise ValueError(f"must be soft (alert) or hard (gateways refuse), got {v!r}")
    return str(v)


@type_name("ISO 4217 code")
def parse_currency(v: Any) -> str:
    """An ISO 4217 currency code such as USD."""
    if not isinstance(v, str) or not re.fullmatch(r"[A-Z]{3}", v):
        raise ValueError(f"must be an ISO 4217 code such as USD, got {v!r}")
    return v


@type_name("http(s) URL")
def _http_url(v: Any) -> str:
    if not isinstance(v, str) or urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).hostname:
        raise ValueError(f"must be an http(s) URL, got {v!r}")
    return v


@type_name("secret string")
def _hmac_key(v: Any) -> Secret:
    if not isinstance(v, str) or len(v) < 16:
        raise ValueError("must be a string of at least 16 characters (the HMAC-SHA256 key)")
    return Secret(v)


# --- the section ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """A rule's ``limit``: tokens and/or cost (at least one)."""

    tokens: int | None = setting(
        None,
        parse=positive_int,
        doc="Input + output tokens (input includes cache tokens, output includes reasoning).",
    )
    cost: Decimal | None = setting(
        None,
        parse=parse_money,
        doc="Priced cost in `currency`, as a decimal string (`'12.50'`); unpriced calls count their "
        "tokens only.",
    )
    currency: str = setting("USD", parse=parse_currency, doc="The currency of `cost`.")

    def check(self, report: Report) -> Self:
        """At least one of tokens and cost is set."""
        if "tokens" not in report.raw and "cost" not in report.raw:
            report.problem("", "set tokens and/or cost (e.g. limit: {tokens: 100000, cost: '5.00'})")
        return self


@dataclass(frozen=True, slots=True)
class _RuleFields:
    """What quotas and budgets share."""

    name: str = setting(
        "",
        parse=_name,
        required="a name of letters, digits and _.:-",
        doc="Unique among quotas and budgets; events and reports cite it.",
    )
    match: tuple[tuple[str, str], ...] = setting(
        (),
        parse=_match,
        doc="Calls counted: attribution values that must all hold (tenant, user, project, team, "
        "feature, service or `tags.<key>`); empty: every call.",
    )
    limits: Limits = section(Limits, key="limit", doc="The limit (required): tokens and/or cost.")
    at_risk: Decimal = setting(
        DEFAULT_AT_RISK,
        parse=_fraction,
        inherit="at_risk",
        doc="Fraction of the limit at which the state becomes at risk.",
    )
    enforcement: str = setting(
        "soft", parse=_enforcement, doc="`soft` alerts; `hard` also tells gateways to refuse calls."
    )


@dataclass(frozen=True, slots=True)
class QuotaRule(_RuleFields):
    """A quota: a limit over a window, one counter per subject named by `per`."""

    kind: ClassVar[str] = "quota"

    per: tuple[str, ...] = setting(
        ("tenant",), parse=_per, doc="The subject: one counter per distinct value of these keys."
    )
    window_kind: str = setting(
        "1d",
        key="window",
        parse=_window,
        required=f"one of {', '.join(WINDOW_KINDS)}",
        doc="The window: an hour, a day or a calendar month, by the wall clock of `timezone`.",
    )
    timezone: str = setting("UTC", parse=_timezone, doc="The time zone of the window's boundaries.")

    @property
    def window(self) -> WindowSpec:
        """The window kind and the zone its boundaries follow."""
        return WindowSpec(self.window_kind, self.timezone)


@dataclass(frozen=True, slots=True)
class BudgetRule(_RuleFields):
    """A budget: a limit on one execution, i.e. the calls of one context (per tenant and context ID)."""

    kind: ClassVar[str] = "budget"

    @property
    def per(self) -> tuple[str, ...]:
        """A budget counts per tenant and context."""
        return ("tenant", "context")

    @property
    def window(self) -> None:
        """Budgets have no window."""
        return None


#: One quota or budget.
Rule: TypeAlias = QuotaRule | BudgetRule


@dataclass(frozen=True, slots=True)
class LoopRule:
    """A loop rule: a context whose tool loop runs too long or whose prompt grows too fast per step
    crosses it, once (see `tokenbook.collector.budgets.loops`)."""

    kind: ClassVar[str] = "loop"

    name: str = setting(
        "",
        parse=_name,
        required="a name of letters, digits and _.:-",
        doc="Unique among quotas, budgets and loop rules; events cite it.",
    )
    match: tuple[tuple[str, str], ...] = setting(
        (),
        parse=_match,
        doc="Contexts watched: attribution values that must all hold (tenant, user, project or "
        "feature); empty: every context.",
    )
    max_steps: int | None = setting(
        None,
        parse=positive_int,
        doc="A tool loop of more than this many model calls crosses the rule.",
    )
    max_prompt_growth: int | None = setting(
        None,
        parse=positive_int,
        doc="A tool loop whose prompt grows by more than this many input tokens per step (on average "
        "over the loop) crosses the rule.",
    )
    enforcement: str = setting(
        "soft",
        parse=_enforcement,
        doc="`soft` alerts; `hard` also tells gateways to refuse the context's calls.",
    )

    def check(self, report: Report) -> Self:
        """At least one limit; match keys the per-context aggregate keeps."""
        if self.max_steps is None and self.max_prompt_growth is None and report.ok():
            report.problem("", "set max_steps and/or max_prompt_growth (e.g. max_steps: 8)")
        for key, _ in self.match:
            if key not in LOOP_MATCH_KEYS:
                report.problem(f"match.{key}", f"loop rules match on {', '.join(LOOP_MATCH_KEYS)}")
        return self

    def crossed(self, steps: int, growth: float | None) -> bool:
        """Whether a context's longest loop (`steps` calls) or its prompt growth per step crosses."""
        if self.max_steps is not None and steps > self.max_steps:
            return True
        return self.max_prompt_growth is not None and growth is not None and growth > self.max_prompt_growth


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Alerts POSTed as JSON to a URL, with retries."""

    url: str = setting("", parse=_http_url, required="an http(s) URL", doc="Where events are POSTed.")
    secret: Secret | None = setting(
        None,
        parse=_hmac_key,
        doc="HMAC-SHA256 key (16+ characters) of the `X-Tokenbook-Signature` header; absent: unsigned.",
    )
    timeout: float = setting(5.0, parse=duration, doc="Timeout of one delivery attempt.")
    max_attempts: int = setting(5, parse=positive_int, doc="Attempts per event before it is dropped.")
    backoff: float = setting(0.5, parse=duration, doc="First retry delay; doubles up to `max_backoff`.")
    max_backoff: float = setting(30.0, parse=duration, doc="Longest retry delay.")


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """Where state changes go."""

    log: bool = setting(True, parse=boolean, doc="Log each state change.")
    webhook: WebhookConfig | None = optional_section(WebhookConfig, doc="Also POST each event; absent: off.")


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Per-tenant burn-rate circuit breaker (token rate over `window` vs the trailing baseline)."""

    enabled: bool = setting(False, parse=boolean, doc="Run the breaker.")
    window: float = setting(60.0, parse=duration, doc="The burn-rate window.")
    baseline: float = setting(
        3600.0,
        parse=duration,
        doc="Trailing history the baseline rate is taken from (at least twice `window`).",
    )
    factor: Decimal = setting(
        Decimal(10),
        parse=parse_money,
        type_doc="decimal",
        doc="Trip when the window's tokens exceed this many times the baseline's rate.",
    )
    min_tokens: int = setting(
        100_000, parse=positive_int, doc="The factor rule never trips below this many tokens in a window."
    )
    max_tokens: int | None = setting(
        None, parse=positive_int, doc="Absolute cap: trip above this many tokens in a window."
    )
    cooldown: float = setting(300.0, parse=duration, doc="How long a tripped tenant stays tripped.")

    def check(self, report: Report) -> Self:
        """The baseline spans at least two windows."""
        if self.baseline < 2 * self.window:
            report.problem("baseline", "must be at least twice breaker.window (the trailing history)")
        return self


@dataclass(frozen=True, slots=True)
class ReservationsConfig:
    """Reservations: the gateway holds an estimate against the hard limits before a call is made."""

    ttl: float = setting(
        300.0,
        parse=duration,
        doc="How long a reservation holds when the request names no `ttl`; then it is released.",
    )
    max_ttl: float = setting(3600.0, parse=duration, doc="The longest `ttl` a request may ask for.")
    max_open: int = setting(
        100_000,
        parse=positive_int,
        doc="Open reservations kept in memory; beyond, new ones are refused (HTTP 429) until some are "
        "settled, released or expired.",
    )

    def check(self, report: Report) -> Self:
        """The default ttl is within max_ttl."""
        if self.ttl > self.max_ttl:
            report.problem("ttl", "must not be longer than reservations.max_ttl")
        return self


@dataclass(frozen=True, slots=True)
class BudgetsConfig:
    """The ``budgets`` section: quotas, budgets, alert sinks and the breaker."""

    at_risk: Decimal = setting(
        DEFAULT_AT_RISK,
        parse=_fraction,
        doc="Default `at_risk` of every quota and budget: the fraction of a limit that is at risk.",
    )
    context_ttl: float = setting(
        86_400.0, parse=duration, doc="How long an idle context's budget counters are kept (and rebuilt)."
    )
    max_subjects: int = setting(
        100_000,
        parse=positive_int,
        doc="Quota and budget counters kept in memory; beyond, the least recently used is evicted and "
        "rebuilt from the ledger when its subject comes back. Also bounds the contexts waiting for the "
        "loop rules and the loop crossings remembered.",
    )
    fleet_sync: float = setting(
        2.0,
        parse=duration_or_zero,
        doc="With a ClickHouse server: how often the counters and the breaker are reconciled with the "
        "ledger, so that collectors sharing it enforce and alert fleet-wide totals (0: off; each "
        "collector counts only what it receives). Not used with the embedded store.",
    )
    quotas: tuple[QuotaRule, ...] = items(QuotaRule, doc="Limits over a window, per subject.")
    budgets: tuple[BudgetRule, ...] = items(BudgetRule, doc="Limits per execution (tenant and context).")
    loops: tuple[LoopRule, ...] = items(LoopRule, doc="Runaway tool loops, per context.")
    alerts: AlertsConfig = section(AlertsConfig, doc="Where state changes are sent.")
    breaker: BreakerConfig = section(BreakerConfig, doc="The per-tenant burn-rate circuit breaker.")
    reservations: ReservationsConfig = section(
        ReservationsConfig, doc="Reservations made through the gateway endpoint before a call."
    )

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Quotas, then budgets."""
        return self.quotas + self.budgets

    @property
    def enabled(self) -> bool:
        """Whether anything is to be evaluated."""
        return bool(self.quotas or self.budgets or self.loops or self.breaker.enabled)

    @property
    def log(self) -> bool:
        """``alerts.log``."""
        return self.alerts.log

    @property
    def webhook(self) -> WebhookConfig | None:
        """``alerts.webhook``."""
        return self.alerts.webhook

    def check(self, report: Report) -> Self:
        """Quota, budget and loop rule names are unique."""
        names: set[str] = set()
        kinds: tuple[tuple[str, tuple[Rule | LoopRule, ...]], ...] = (
            ("quotas", self.quotas),
            ("budgets", self.budgets),
            ("loops", self.loops),
        )
        for key, rules in kinds:
            for i, rule in zip(report.item_indices(key), rules, strict=True):
                if not report.ok(f"{key}[{i}].name"):
                    continue
                if rule.name in names:
                    report.problem(
                        f"{key}[{i}].name",
                        f"{rule.name!r} is used twice: quota, budget and loop rule names must be unique",
                    )
                names.add(rule.name)
        return self


def parse_budgets(raw: Any, path: str = "budgets") -> tuple[BudgetsConfig, list[str]]:
    """Validate the `budgets:` section; returns the config and every problem (empty when valid)."""
    return load(BudgetsConfig, raw, path)
