"""`tests/scheduling.py`: the modules it keeps on one pytest-xdist worker exist and build a
module-scoped fixture (else there is nothing to share, and grouping only costs balance)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.scheduling import ONE_WORKER_MODULES, scope_of

REPO = Path(__file__).resolve().parents[1]


def test_every_module_kept_on_one_worker_exists_and_has_a_module_scoped_fixture() -> None:
    for module in sorted(ONE_WORKER_MODULES):
        path = REPO / module
        assert path.is_file(), module
        assert re.search(r"@pytest\.fixture\(scope=\"module\"", path.read_text(encoding="utf-8")), module


def test_a_listed_module_is_one_scope_and_every_other_test_its_own() -> None:
    grouped = "tests/conformance/test_replay.py"
    assert grouped in ONE_WORKER_MODULES
    assert scope_of(f"{grouped}::test_a[x]") == scope_of(f"{grouped}::test_b") == grouped
    other = "tests/conformance/test_order.py::test_every_order[agents-1]"
    assert scope_of(other) == other


def test_a_run_that_holds_e2e_tests_sends_whole_modules() -> None:
    """Many e2e modules share one collector whose later tests read what the earlier ones left, and the
    guide's page tests take the default ports: in such a run each module is one unit."""
    e2e = "tests/collector/budgets/test_e2e.py"
    assert scope_of(f"{e2e}::test_a", whole_modules=True) == scope_of(f"{e2e}::test_b", whole_modules=True)
    assert scope_of(f"{e2e}::test_a", whole_modules=True) == e2e
    assert scope_of(f"{e2e}::test_a") == f"{e2e}::test_a"
