"""The argument parser: help texts, usage errors, HOST:PORT values, and messages instead of tracebacks."""

from __future__ import annotations

import argparse
import builtins
import sys
from pathlib import Path

import pytest

from tokenbook.cli import _parsers, main, parse_args
from tokenbook.cli.reports import engine_message, parse_params
from tokenbook.collector.storage.store import StoreError


def _options():
    _, commands = _parsers()
    for name, parser in commands.items():
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                yield name, action


def test_every_option_has_help_with_its_default():
    for command, action in _options():
        assert action.help, f"{command} {action.option_strings[0]} has no help"
        if not action.required:
            assert "default" in action.help, f"{command} {action.option_strings[0]}: {action.help}"


def test_demo_help_names_the_directory_the_demo_uses(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "./tokenbook-demo-data" in out and "temp dir" not in out


def test_unknown_option_prints_the_commands_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["report", "--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: tokenbook report") and "unrecognized arguments: --bogus" in err


@pytest.mark.parametrize("value", ["localhost", "localhost:", ":4319", "host:99999", "host:port"])
def test_admin_must_be_host_port(value, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["report", "--admin", value])
    assert exc.value.code == 2
    assert "is not HOST:PORT" in capsys.readouterr().err


def test_host_port_forms_accepted():
    assert parse_args(["report", "--admin", "localhost:4319"]).admin == "localhost:4319"
    assert parse_args(["collector", "--grpc", "[::1]:4317"]).grpc == "[::1]:4317"


def test_report_by_team_and_new_flags_parse():
    args = parse_args(["report", "--by", "team", "--exact"])
    assert (args.by, args.exact) == ("team", True)
    assert parse_args(["sql", "SELECT 1", "--param", "a=1", "--param", "b=x=y"]).param == ["a=1", "b=x=y"]
    assert parse_args(["reprice", "--since", "1d", "--dry-run"]).dry_run
    assert parse_args(["collector", "--overrides", "p.yaml"]).overrides == "p.yaml"


def test_parse_params():
    assert parse_params(["tenant=acme", "q=a=b", "empty="]) == {"tenant": "acme", "q": "a=b", "empty": ""}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_params(["novalue"])


def test_engine_errors_show_the_users_query_only():
    raw = StoreError(
        "Code: 47. DB::Exception: Unknown expression identifier `foo`. In scope SELECT foo FROM v_calls "
        "SETTINGS readonly = '2', max_result_rows = '100000', result_overflow_mode = 'throw', "
        "max_execution_time = '10' FORMAT Native. (UNKNOWN_IDENTIFIER)"
    )
    message = engine_message(raw)
    assert "In scope SELECT foo FROM v_calls. (UNKNOWN_IDENTIFIER)" in message
    assert "SETTINGS" not in message and "FORMAT" not in message
    assert "In scope" not in engine_message(raw, show_query=False)
    limit = engine_message(StoreError("Limit for result exceeded (TOO_MANY_ROWS_OR_BYTES)"))
    assert "LIMIT" in limit


def test_a_missing_extra_is_named(monkeypatch, capsys):
    real_import = builtins.__import__

    def light_install(name, *args, **kwargs):  # tokenbook without the collector extra
        if name.startswith("tokenbook.collector"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    for module in [m for m in sys.modules if m.startswith(("tokenbook.collector", "tokenbook.cli."))]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", light_install)
    assert main(["report"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'tokenbook[collector]'" in err and err.count("\n") == 1


def test_demo_hint_command_is_runnable_from_here(monkeypatch, tmp_path):
    from tokenbook.cli import demo

    monkeypatch.setenv("PATH", str(tmp_path))  # `tokenbook` is not on PATH, as after `make demo`
    name = demo.command_name()
    assert name != "tokenbook"
    assert Path(name).exists() or name.endswith("-m tokenbook")
