"""The `budgets:` section of the collector config: quotas, budgets, alert sinks and the breaker.

A **quota** caps usage over a window (`1h`, `1d`, `calendar_month` in a time zone) for each subject
named by `per` (default: each tenant). A **budget** caps one execution: the calls of one context
(per tenant and context ID), with no window. Both have a `match` on attribution (tenant, user,
project, team, feature, service, or ``tags.<key>``), limits in tokens and/or money, an `at_risk`
threshold (a fraction of the limit, default 0.8) and an `enforcement` (`soft` alerts, `hard` also
tells gateways to refuse).

`parse_budgets(raw, path)` validates the section and returns ``(BudgetsConfig, problems)``: every
problem carries its full key path (``budgets.quotas[0].window: must be one of ...``) so that
`collector.config.load_config` reports them together with its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tokenbook.collector.budgets.windows import WINDOW_KINDS, WindowSpec
from tokenbook.collector.config import Secret, parse_duration, parse_positive_int

__all__ = [
    "ATTRIBUTE_KEYS",
    "DEFAULT_AT_RISK",
    "BreakerConfig",
    "BudgetsConfig",
    "Limits",
    "Rule",
    "WebhookConfig",
    "parse_budgets",
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
DEFAULT_AT_RISK: Final = Decimal("0.8")
ENFORCEMENTS: Final = ("soft", "hard")
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")


@dataclass(frozen=True, slots=True)
class Limits:
    tokens: int | None  # input + output tokens (input includes cache tokens, output includes reasoning)
    cost: Decimal | None  # priced cost in `currency`; unpriced calls count their tokens only
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class Rule:
    """One quota (`kind="quota"`, with a window) or budget (`kind="budget"`, per context)."""

    name: str
    kind: str  # quota | budget
    match: tuple[tuple[str, str], ...]  # (key, value) pairs that must all hold
    per: tuple[str, ...]  # the subject: one counter per distinct value tuple
    window: WindowSpec | None  # None for budgets
    limits: Limits
    at_risk: Decimal
    enforcement: str  # soft | hard


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    secret: Secret | None  # HMAC-SHA256 key of the X-Tokenbook-Signature header; None: unsigned
    timeout: float = 5.0
    max_attempts: int = 5
    backoff: float = 0.5  # first retry delay; doubles up to max_backoff
    max_backoff: float = 30.0


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Per-tenant burn-rate circuit breaker (token rate over `window` vs the trailing baseline)."""

    enabled: bool = False
    window: float = 60.0  # seconds of the burn-rate window
    baseline: float = 3600.0  # seconds of trailing history the baseline rate is taken from
    factor: Decimal = Decimal(10)  # trip when the window's tokens exceed factor x the baseline's
    min_tokens: int = 100_000  # the factor rule never trips below this many tokens in a window
    max_tokens: int | None = None  # absolute cap: trip above this many tokens in a window
    cooldown: float = 300.0  # seconds a tripped tenant stays tripped


@dataclass(frozen=True, slots=True)
class BudgetsConfig:
    quotas: tuple[Rule, ...] = ()
    budgets: tuple[Rule, ...] = ()
    log: bool = True
    webhook: WebhookConfig | None = None
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    context_ttl: float = 86_400.0  # seconds an idle context's budget counters are kept (and rebuilt)
    max_subjects: int = 100_000  # counters kept in memory; beyond, the least recently used is evicted

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.quotas + self.budgets

    @property
    def enabled(self) -> bool:
        return bool(self.quotas or self.budgets or self.breaker.enabled)


class _Problems(list[str]):
    def at(self, path: str, message: str) -> None:
        self.append(f"{path}: {message}")


def _mapping(raw: Any, path: str, problems: _Problems, known: tuple[str, ...]) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.at(path, "must be a mapping")
        return {}
    for key in raw:
        if key not in known:
            problems.at(f"{path}.{key}", f"unknown key (known here: {', '.join(sorted(known))})")
    return raw


def _money(v: Any) -> Decimal:
    if isinstance(v, bool | float):
        raise ValueError(f"must be a decimal string or an integer (never a float: write '12.50'), got {v!r}")
    try:
        d = Decimal(v) if isinstance(v, int | str) else None
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite() or d <= 0:
        raise ValueError(f"must be a positive amount such as '12.50', got {v!r}")
    return d


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


def _leaf(raw: Mapping[str, Any], key: str, path: str, problems: _Problems, parse: Any, default: Any) -> Any:
    value = raw.get(key)
    if value is None:
        return default
    try:
        return parse(value)
    except ValueError as exc:
        problems.at(f"{path}.{key}", str(exc))
        return default


def _limits(raw: Any, path: str, problems: _Problems) -> Limits:
    m = _mapping(raw, path, problems, ("tokens", "cost", "currency"))
    tokens = _leaf(m, "tokens", path, problems, parse_positive_int, None)
    cost = _leaf(m, "cost", path, problems, _money, None)
    currency = m.get("currency", "USD")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        problems.at(f"{path}.currency", f"must be an ISO 4217 code such as USD, got {currency!r}")
        currency = "USD"
    if raw is None or ("tokens" not in m and "cost" not in m):
        problems.at(path, "set tokens and/or cost (e.g. limit: {tokens: 100000, cost: '5.00'})")
    return Limits(tokens, cost, currency)


def _rule(raw: Any, path: str, kind: str, problems: _Problems, at_risk: Decimal, names: set[str]) -> Rule:
    keys: tuple[str, ...] = ("name", "match", "limit", "at_risk", "enforcement")
    if kind == "quota":
        keys += ("per", "window", "timezone")
    m = _mapping(raw, path, problems, keys)
    name = m.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.at(f"{path}.name", f"must be a name of letters, digits and _.:- (1-100), got {name!r}")
        name = f"{kind}-{len(names)}"
    elif name in names:
        problems.at(f"{path}.name", f"{name!r} is used twice: quota and budget names must be unique")
    names.add(name)
    match: list[tuple[str, str]] = []
    raw_match = m.get("match")
    known_match = tuple(raw_match) if isinstance(raw_match, Mapping) else ()
    for key, value in _mapping(raw_match, f"{path}.match", problems, known_match).items():
        try:
            match.append((_attribute_key(key), value))
        except ValueError as exc:
            problems.at(f"{path}.match.{key}", str(exc))
            continue
        if not isinstance(value, str) or not value:
            problems.at(f"{path}.match.{key}", f"must be a non-empty string, got {value!r}")
    window: WindowSpec | None = None
    if kind == "quota":
        per_raw = m.get("per", ["tenant"])
        per_list = [per_raw] if isinstance(per_raw, str) else per_raw
        per: tuple[str, ...] = ()
        if not isinstance(per_list, list):
            problems.at(f"{path}.per", "must be an attribute key or a list of them, e.g. [tenant, user]")
        else:
            for i, key in enumerate(per_list):
                try:
                    per += (_attribute_key(key),)
                except ValueError as exc:
                    problems.at(f"{path}.per[{i}]", str(exc))
        kind_raw = m.get("window")
        if kind_raw not in WINDOW_KINDS:
            problems.at(f"{path}.window", f"must be one of {', '.join(WINDOW_KINDS)}, got {kind_raw!r}")
            kind_raw = "1d"
        tz = m.get("timezone", "UTC")
        try:
            if not isinstance(tz, str):
                raise ZoneInfoNotFoundError(tz)
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            problems.at(f"{path}.timezone", f"must be an IANA time zone such as Europe/Paris, got {tz!r}")
            tz = "UTC"
        window = WindowSpec(str(kind_raw), tz)
    else:
        per = ("tenant", "context")
    enforcement = m.get("enforcement", "soft")
    if enforcement not in ENFORCEMENTS:
        problems.at(
            f"{path}.enforcement", f"must be soft (alert) or hard (gateways refuse), got {enforcement!r}"
        )
        enforcement = "soft"
    return Rule(
        name=name,
        kind=kind,
        match=tuple(match),
        per=per,
        window=window,
        limits=_limits(m.get("limit"), f"{path}.limit", problems),
        at_risk=_leaf(m, "at_risk", path, problems, _fraction, at_risk),
        enforcement=str(enforcement),
    )


def _webhook(raw: Any, path: str, problems: _Problems) -> WebhookConfig | None:
    if raw is None:
        return None
    keys = ("url", "secret", "timeout", "max_attempts", "backoff", "max_backoff")
    m = _mapping(raw, path, problems, keys)
    url = m.get("url")
    if (
        not isinstance(url, str)
        or urlsplit(url).scheme not in ("http", "https")
        or not urlsplit(url).hostname
    ):
        problems.at(f"{path}.url", f"must be an http(s) URL, got {url!r}")
        url = ""
    secret = m.get("secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) < 16):
        problems.at(f"{path}.secret", "must be a string of at least 16 characters (the HMAC-SHA256 key)")
        secret = None
    return WebhookConfig(
        url=str(url),
        secret=Secret(secret) if isinstance(secret, str) else None,
        timeout=_leaf(m, "timeout", path, problems, parse_duration, 5.0),
        max_attempts=_leaf(m, "max_attempts", path, problems, parse_positive_int, 5),
        backoff=_leaf(m, "backoff", path, problems, parse_duration, 0.5),
        max_backoff=_leaf(m, "max_backoff", path, problems, parse_duration, 30.0),
    )


def _breaker(raw: Any, path: str, problems: _Problems) -> BreakerConfig:
    keys = ("enabled", "window", "baseline", "factor", "min_tokens", "max_tokens", "cooldown")
    m = _mapping(raw, path, problems, keys)
    enabled = m.get("enabled", False)
    if not isinstance(enabled, bool):
        problems.at(f"{path}.enabled", f"must be true or false, got {enabled!r}")
        enabled = False
    d = BreakerConfig()
    cfg = BreakerConfig(
        enabled=enabled,
        window=_leaf(m, "window", path, problems, parse_duration, d.window),
        baseline=_leaf(m, "baseline", path, problems, parse_duration, d.baseline),
        factor=_leaf(m, "factor", path, problems, _money, d.factor),
        min_tokens=_leaf(m, "min_tokens", path, problems, parse_positive_int, d.min_tokens),
        max_tokens=_leaf(m, "max_tokens", path, problems, parse_positive_int, d.max_tokens),
        cooldown=_leaf(m, "cooldown", path, problems, parse_duration, d.cooldown),
    )
    if cfg.baseline < 2 * cfg.window:
        problems.at(f"{path}.baseline", "must be at least twice breaker.window (the trailing history)")
    return cfg


def parse_budgets(raw: Any, path: str = "budgets") -> tuple[BudgetsConfig, list[str]]:
    """Validate the `budgets:` section; returns the config and every problem (empty when valid)."""
    problems = _Problems()
    keys = ("at_risk", "quotas", "budgets", "alerts", "breaker", "context_ttl", "max_subjects")
    m = _mapping(raw, path, problems, keys)
    at_risk = _leaf(m, "at_risk", path, problems, _fraction, DEFAULT_AT_RISK)
    names: set[str] = set()
    rules: dict[str, list[Rule]] = {"quota": [], "budget": []}
    for kind, key in (("quota", "quotas"), ("budget", "budgets")):
        items = m.get(key) or []
        if not isinstance(items, list):
            problems.at(f"{path}.{key}", "must be a list")
            continue
        for i, item in enumerate(items):
            rules[kind].append(_rule(item, f"{path}.{key}[{i}]", kind, problems, at_risk, names))
    alerts = _mapping(m.get("alerts"), f"{path}.alerts", problems, ("log", "webhook"))
    log = alerts.get("log", True)
    if not isinstance(log, bool):
        problems.at(f"{path}.alerts.log", f"must be true or false, got {log!r}")
        log = True
    config = BudgetsConfig(
        quotas=tuple(rules["quota"]),
        budgets=tuple(rules["budget"]),
        log=log,
        webhook=_webhook(alerts.get("webhook"), f"{path}.alerts.webhook", problems),
        breaker=_breaker(m.get("breaker"), f"{path}.breaker", problems),
        context_ttl=_leaf(m, "context_ttl", path, problems, parse_duration, 86_400.0),
        max_subjects=_leaf(m, "max_subjects", path, problems, parse_positive_int, 100_000),
    )
    return config, list(problems)
