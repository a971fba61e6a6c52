"""Every benchmark and fault-injection command the docs give (README.md, CONTRIBUTING.md, docs/, and
the scripts' own docstrings) runs as written: `--help` in the same form (a script path, or
``-m bench.…``) exits 0 and names each option the command passes. A script that moves, or loses or
renames an option, fails here rather than in a reader's shell."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # starts processes

ROOT = Path(__file__).resolve().parents[2]
_COMMAND = re.compile(
    r"python (-m bench(?:\.\w+)+|bench/[\w/]+\.py)"
    r"((?:[ \t]+(?:\[[^\]`]*\]|--?[\w-]+(?:[ =](?!-)[^\s`|,;()\[\]]+)?))*)"
)


def _commands() -> dict[str, set[str]]:
    """The documented invocations (``-m bench.x`` or ``bench/x.py``) and the options passed to each."""
    sources = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").rglob("*.md")]
    sources += (ROOT / "bench").rglob("*.py")
    found: dict[str, set[str]] = {}
    for source in sources:
        for match in _COMMAND.finditer(source.read_text(encoding="utf-8")):
            found.setdefault(match.group(1), set()).update(re.findall(r"--[\w-]+", match.group(2)))
    return found


COMMANDS = _commands()


def test_the_docs_give_benchmark_commands() -> None:
    assert len(COMMANDS) > 20 and "-m bench.faults.sigkill" in COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_documented_benchmark_command_runs_as_written(command: str) -> None:
    run = subprocess.run(
        [sys.executable, *command.split(" "), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(f for f in COMMANDS[command] if f not in run.stdout) == []
