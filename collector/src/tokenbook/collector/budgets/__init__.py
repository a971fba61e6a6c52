"""Fleet-wide quotas, budgets, alerts and a burn-rate circuit breaker, evaluated in the collector.

See `config` (the `budgets:` section), `windows`, `counters`, `evaluator`, `events`, `alerts`,
`webhook`, `breaker`, `fleet` (reconciliation with the ledger shared by a fleet of collectors),
`claims` (each alert delivered once per fleet) and `runtime` (what the collector process wires in).
"""

from tokenbook.collector.budgets.config import (
    BreakerConfig,
    BudgetsConfig,
    Limits,
    Rule,
    WebhookConfig,
    parse_budgets,
)
from tokenbook.collector.budgets.evaluator import BudgetEvaluator, RebuildResult
from tokenbook.collector.budgets.events import BudgetEvent
from tokenbook.collector.budgets.runtime import BudgetRuntime
from tokenbook.collector.budgets.windows import WindowSpec

__all__ = [
    "BreakerConfig",
    "BudgetEvaluator",
    "BudgetEvent",
    "BudgetRuntime",
    "BudgetsConfig",
    "Limits",
    "RebuildResult",
    "Rule",
    "WebhookConfig",
    "WindowSpec",
    "parse_budgets",
]
