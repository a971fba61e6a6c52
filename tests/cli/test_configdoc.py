"""The configuration reference in the docs is the one the config classes generate."""

from __future__ import annotations

from pathlib import Path

from tokenbook.cli.configdoc import COMMAND, DEFAULT_OUTPUT, main, render

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_reference_is_up_to_date() -> None:
    committed = (REPO / DEFAULT_OUTPUT).read_text(encoding="utf-8")
    assert committed == render(), (
        f"{DEFAULT_OUTPUT} differs from the config classes: regenerate it with `make docs` "
        f"(or `.venv/bin/{COMMAND}` from the repository root) and commit it"
    )


def test_every_section_and_setting_is_documented() -> None:
    text = render()
    for key in (
        "`receivers.otlp.protocols.grpc.tls.cert_file`",
        "`storage.spool.dir`",
        "`auth.tokens`",
        "`limits.tenant_rate.burst`",
        "`budgets.quotas[].window`",
        "`budgets.alerts.webhook.secret`",
        "`models[].prices.input_mtok`",
        "`TOKENBOOK_TRACKER_SIZE`",
    ):
        assert key in text, key
    assert "| `storage.spool.max_bytes` | size | `1GiB` |" in text


def test_main_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "ref" / "config.md"
    assert main([str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render()
