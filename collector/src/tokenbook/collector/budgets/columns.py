"""A rule's attributes as columns of the ledger: the SQL its usage statements read per call.

The usage statements (``budgets/*_usage.sql``) sum a rule's calls per subject from ``llm_calls``.
`RuleColumns.of` turns the rule's ``per`` keys into one ``Array(String)`` expression (the subject, in
``per`` order) and into a condition that one subject's values hold, and its ``match`` into one
condition, each key read from its own column (`ATTRIBUTE_KEYS`) or from the ``tags`` map. Column
names come from that fixed table; tag keys, match values and subject values are bound parameters,
never text of the statement. Reading the columns a rule names, rather than a map of every attribute
built for every call, is what keeps a usage read over a month of calls cheap; comparing a subject
column by column lets the ledger's sorting key (tenant, then context) find one subject's calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokenbook.collector.budgets.config import ATTRIBUTE_KEYS, TAG_PREFIX, Rule
from tokenbook.collector.storage.sqltemplate import render_query

__all__ = ["RuleColumns"]


@dataclass(frozen=True, slots=True)
class RuleColumns:
    """One rule's ``per`` and ``match`` over ``llm_calls``, and the parameters they bind."""

    subject: str  # an Array(String) expression: the per keys' values of a call, in order
    #: a condition: the call's per keys have the values bound as `subject_values` gives them, one
    #: comparison per column (so that the ledger's sorting key, tenant then context, finds them)
    subject_is: str
    match: str  # a condition: the call has every matched value ("1" when the rule matches all)
    parameters: Mapping[str, Any]  # the tag keys and match values the expressions bind

    @classmethod
    def of(cls, rule: Rule) -> RuleColumns:
        """The columns of `rule` (its keys are validated by `parse_budgets`)."""
        parameters: dict[str, Any] = {}

        def column(key: str) -> str:
            name = ATTRIBUTE_KEYS.get(key)
            if name is not None:
                return name
            bound = f"rule_tag_{len(parameters)}"
            parameters[bound] = key[len(TAG_PREFIX) :]
            return f"tags[{{{bound}:String}}]"

        values = [column(key) for key in rule.per]
        subject = f"[{', '.join(values)}]" if values else "CAST([], 'Array(String)')"
        conditions = []
        for key, value in rule.match:
            name = column(key)
            bound = f"rule_value_{len(parameters)}"
            parameters[bound] = value
            conditions.append(f"{name} = {{{bound}:String}}")
        subject_is = [f"{name} = {{rule_subject_{i}:String}}" for i, name in enumerate(values)]
        return cls(
            subject=subject,
            subject_is=" AND ".join(subject_is) or "1",
            match=" AND ".join(conditions) or "1",
            parameters=parameters,
        )

    @staticmethod
    def subject_values(subject: Sequence[str]) -> dict[str, str]:
        """The parameters `subject_is` binds: one subject's values (in ``per`` order)."""
        return {f"rule_subject_{i}": value for i, value in enumerate(subject)}

    def query(self, name: str, database: str) -> str:
        """The usage statement `budgets/<name>` for this rule."""
        return render_query(
            f"budgets/{name}", database, subject=self.subject, match=self.match, subject_is=self.subject_is
        )
