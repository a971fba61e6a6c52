"""`tokenbook prices`: the price used for a model and where it came from."""

from __future__ import annotations

import json
from pathlib import Path

from tokenbook.cli import main
from tokenbook.genai.pricing.catalog import CATALOG_NAME

TESTDATA = Path(__file__).parents[1] / "testdata"


def test_model_price_and_source(capsys):
    assert main(["prices", "claude-sonnet-4-5", "--provider", "anthropic", "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["input_mtok"], row["output_mtok"], row["cache_read_mtok"]) == ("3", "15", "0.3")
    assert row["source"] == f"{CATALOG_NAME} anthropic/claude-sonnet-4-5"
    assert "above 200,000 input tokens" in row["tiers"]


def test_price_at_a_date(capsys):
    assert main(["prices", "o3", "--at", "2025-06-01", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_mtok"] == "10"
    assert main(["prices", "o3", "--at", "2025-06-20T00:00:00Z", "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["input_mtok"], row["source"]) == ("2", f"{CATALOG_NAME} openai/o3 (2025-06-10..)")


def test_override_source_and_checked(capsys):
    args = ["prices", "gpt-4o", "--provider", "openai", "--overrides", str(TESTDATA / "prices.yaml")]
    assert main([*args, "--at", "2026-09-01"]) == 0
    out = capsys.readouterr().out
    assert "prices.yaml#gpt-4o-negotiated-h2" in out
    assert "Acme/OpenAI enterprise agreement, H2 (checked 2026-07-02" in out


def test_unknown_model_exits_1_with_reason(capsys):
    assert main(["prices", "no-such-model", "--provider", "openai"]) == 1
    assert "no-such-model" in capsys.readouterr().err


def test_bad_overrides_file_lists_errors(capsys):
    assert main(["prices", "gpt-4o", "--overrides", str(TESTDATA / "prices_invalid.yaml")]) == 2
    assert "models[1].prices.input_mtok: must be a decimal string" in capsys.readouterr().err


def test_provider_listing_csv(capsys):
    assert main(["prices", "--provider", "gcp.gemini", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("provider,model,input_mtok")
    assert any(line.startswith("google,gemini-2.5-pro,") for line in lines)


def test_catalog_overview(capsys):
    assert main(["prices", "--overrides", str(TESTDATA / "prices.yaml")]) == 0
    out = capsys.readouterr().out
    assert "anthropic" in out and "prices.yaml#acme-llama-70b" in out
