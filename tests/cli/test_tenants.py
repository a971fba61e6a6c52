"""`tokenbook tenants policies`: the statements for the tenants of the flags and of the config's tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tokenbook.cli import main
from tokenbook.collector.auth import token_digest
from tokenbook.collector.config import ConfigError, load_config


def test_print_covers_the_config_tenants_and_the_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text(
        yaml.safe_dump({
            "auth": {"enabled": True, "tokens": [
                {"sha256": token_digest("t-acme"), "tenant": "acme", "scopes": ["query"]},
                {"sha256": token_digest("t-ops"), "tenant": "*", "scopes": ["admin"]},
            ]}
        }),
        encoding="utf-8",
    )  # fmt: skip
    code = main(
        [
            "tenants",
            "policies",
            "--reader",
            "tb_reader",
            "--config",
            str(config),
            "--tenant",
            "globex",
            "--print",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    statements = [s for s in out.split(";\n") if s]
    assert "GRANT `tokenbook_tokenbook_tenant_acme` TO `tb_reader`" in statements
    assert "GRANT `tokenbook_tokenbook_tenant_globex` TO `tb_reader`" in statements
    assert not any("tenant_*" in s or "tenant_`" in s for s in statements)  # "*" is every tenant: no role
    assert (
        "CREATE ROW POLICY OR REPLACE `tokenbook_tokenbook_tenant_acme` ON `tokenbook`.`llm_calls` "
        "AS PERMISSIVE FOR SELECT USING tenant_id = 'acme' TO `tokenbook_tokenbook_tenant_acme`"
    ) in statements
    assert statements[-1] == "ALTER USER `tb_reader` DEFAULT ROLE NONE"


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tenants", "policies", "--reader", "r", "--print"]) == 2
    assert "name the tenants" in capsys.readouterr().err
    assert main(["tenants", "policies", "--reader", "r", "--tenant", "acme"]) == 2
    assert "needs --url" in capsys.readouterr().err
    assert main(["tenants", "policies", "--reader", "r", "--tenant", "acme'--", "--print"]) == 1
    assert "invalid tenant" in capsys.readouterr().err


def test_a_tenant_reader_needs_a_server(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump({"storage": {"clickhouse": {"tenant_reader": "http://reader:pw@ch:8123"}}}),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"tenant_reader: needs clickhouse\.url"):
        load_config(config)
    config.write_text(
        yaml.safe_dump({"storage": {"clickhouse": {
            "url": "http://tokenbook:pw@ch:8123", "tenant_reader": "http://reader:pw@ch:8123"
        }}}),
        encoding="utf-8",
    )  # fmt: skip
    assert load_config(config).clickhouse.tenant_reader is not None
