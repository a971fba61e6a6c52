"""The CLI reference (docs/reference/cli.md) names every command and every long option the
`tokenbook` parser has: a command or flag added without its row fails here."""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenbook.cli import build_parser

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "cli.md"


def _commands(
    parser: argparse.ArgumentParser, prefix: str = "tokenbook"
) -> dict[str, argparse.ArgumentParser]:
    """Every command (and subcommand, where a command has them) with its parser."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix} {name}"] = sub
                found.update(_commands(sub, f"{prefix} {name}"))
    return found


def test_every_command_and_long_option_is_in_the_cli_reference() -> None:
    reference = REFERENCE.read_text(encoding="utf-8")
    commands = _commands(build_parser())
    assert len(commands) >= 13 and "tokenbook collector" in commands
    missing = [name for name in commands if f"`{name}" not in reference]
    missing += [
        f"{name} {option}"
        for name, sub in commands.items()
        for action in sub._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help" and option not in reference
    ]
    assert missing == [], f"not in {REFERENCE.name}: {missing}"
