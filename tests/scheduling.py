"""How pytest-xdist hands the tests to its workers: one at a time to whichever worker is free (its
``load`` distribution), except the tests of the modules below, which all go to one worker, and, in a
run that holds e2e tests, every module's tests.

Each of these modules builds a store in a module-scoped fixture (a replay of every recorded fixture,
seeded ledgers, every dashboard's data) and its tests only read it. A module's fixture is built once
per worker that runs one of its tests: spread over three workers, it is built three times (2-5 s of
CPU per module and run). `ModuleGroups` sends a module's tests to one worker as one unit, the largest
units first, then every other test on its own as ``load`` does, so the run stays balanced.

The e2e tests start processes (collectors, CLIs, the HTTP test server) and many share one collector
per module whose later tests read what the earlier ones left (a restart, a stop, then the directory
read back): a run that holds them (`ModuleGroups(whole_modules=True)`) sends each module as one unit.
The one module whose collector listens on the default ports (`tests/docs/test_guide_snippets.py`, the
guide's commands as written) is then one unit too, so no other collector takes its ports meanwhile:
every other test binds free ports.

`tests/test_scheduling.py` checks that every module named here exists and has a module-scoped
fixture.
"""

from __future__ import annotations

from typing import Any, Final

from xdist.scheduler import LoadScopeScheduling

__all__ = ["ONE_WORKER_MODULES", "ModuleGroups", "scope_of"]

#: The modules whose tests run on one worker (paths as in their node IDs).
ONE_WORKER_MODULES: Final = frozenset(
    {
        "tests/cli/test_export.py",
        "tests/cli/test_reports_admin.py",
        "tests/collector/budgets/test_dashboard.py",
        "tests/collector/storage/test_chargeback.py",
        "tests/collector/storage/test_guard.py",
        "tests/conformance/test_replay.py",
        "tests/docs/test_doc_queries.py",
        "tests/test_dashboards.py",
    }
)


def scope_of(nodeid: str, *, whole_modules: bool = False) -> str:
    """The unit a test is sent to a worker in: its module for the modules of `ONE_WORKER_MODULES`, and
    for every module with `whole_modules`, else the test alone."""
    module = nodeid.split("::", 1)[0]
    return module if whole_modules or module in ONE_WORKER_MODULES else nodeid


class ModuleGroups(LoadScopeScheduling):  # type: ignore[misc]
    """pytest-xdist's scheduling by scope (its ``loadscope``, which sends the largest scopes first),
    the scopes being `scope_of` the tests. A worker is kept `PENDING` tests ahead (``loadscope``
    sends the next unit when a worker holds two tests or fewer, and a worker runs a test once it
    knows the next: with a test per unit, each would wait for the answer to its predecessor's
    report), and a worker's finished units are forgotten (``loadscope`` counts what a worker holds
    over every unit it was ever sent)."""

    PENDING: Final = 4

    def __init__(self, config: Any, log: Any = None, *, whole_modules: bool = False) -> None:
        """`whole_modules`: every module is one unit (a run that holds e2e tests)."""
        super().__init__(config, log)
        self.whole_modules = whole_modules

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid, whole_modules=self.whole_modules)

    def _reschedule(self, node: Any) -> None:
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        assigned = self.assigned_work[node]
        for scope in [scope for scope, tests in assigned.items() if all(tests.values())]:
            del assigned[scope]
        while self.workqueue and self._pending_of(assigned) < self.PENDING:
            self._assign_work_unit(node)
