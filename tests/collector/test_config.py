"""Collector config: defaults, a full file, flag overrides, and one fixture per invalid case."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenbook.collector.config import ConfigError, Secret, load_config

DATA = Path(__file__).parent.parent / "testdata" / "collector"


def test_defaults_without_a_file() -> None:
    cfg = load_config()
    assert cfg.grpc.endpoint == "127.0.0.1:4317"
    assert cfg.http.endpoint == "127.0.0.1:4318"
    assert cfg.admin.endpoint == "127.0.0.1:4319"
    assert cfg.clickhouse.url is None
    assert cfg.clickhouse.data_dir == Path("tokenbook-data")
    assert cfg.spool.dir == Path("tokenbook-data") / "wal"
    assert cfg.privacy.content == "drop"
    assert cfg.telemetry.summary_interval == 60.0
    assert cfg.grpc.max_request_bytes == 16 * 1024 * 1024


def test_full_file_is_typed_and_frozen() -> None:
    cfg = load_config(DATA / "valid_full.yaml")
    assert cfg.grpc.max_request_bytes == 8 * 1024 * 1024
    assert cfg.spool.max_bytes == 2 * 1024**3
    assert cfg.batch.max_delay == pytest.approx(0.25)
    assert cfg.telemetry.summary_interval == 60.0
    assert cfg.extra_attribution_keys == ("cost.center", "customer.tier")
    assert cfg.spool.dir == Path("/var/spool/tokenbook")
    assert cfg.clickhouse.database == "ledger"
    with pytest.raises(AttributeError):
        cfg.batch.max_rows = 1  # type: ignore[misc]


def test_secrets_never_print() -> None:
    cfg = load_config(DATA / "valid_full.yaml")
    assert isinstance(cfg.clickhouse.url, Secret)
    for text in (repr(cfg), str(cfg), cfg.clickhouse.describe()):
        assert "s3cr3t-pass" not in text
        assert "a-long-enough-salt" not in text
    assert "tokenbook:***@clickhouse.internal:8443" in cfg.clickhouse.describe()
    assert cfg.clickhouse.url.reveal().startswith("https://tokenbook:s3cr3t-pass@")


def test_flags_override_the_file(tmp_path: Path) -> None:
    cfg = load_config(
        DATA / "valid_full.yaml",
        data_dir=str(tmp_path),
        grpc="127.0.0.1:5317",
        http="127.0.0.1:5318",
        admin="127.0.0.1:5319",
    )
    assert (cfg.grpc.endpoint, cfg.http.endpoint, cfg.admin.endpoint) == (
        "127.0.0.1:5317",
        "127.0.0.1:5318",
        "127.0.0.1:5319",
    )
    assert cfg.clickhouse.data_dir == tmp_path
    assert cfg.spool.dir == Path("/var/spool/tokenbook")  # explicit spool dir kept


def test_a_bad_flag_is_reported_with_its_key_path() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(grpc="nowhere")
    assert err.value.problems[0].startswith("receivers.otlp.protocols.grpc.endpoint: must be HOST:PORT")


INVALID = {
    "invalid_endpoint.yaml": ["receivers.otlp.protocols.grpc.endpoint: must be HOST:PORT"],
    "invalid_unknown_key.yaml": ["storage.clickhouse.pasword: unknown key"],
    "invalid_size.yaml": ["storage.spool.max_bytes: must be a size in bytes"],
    "invalid_duration.yaml": ["storage.batch.max_delay: must be a duration"],
    "invalid_url.yaml": ["storage.clickhouse.url: must be a URL"],
    "invalid_content_mode.yaml": ["privacy.content: must be one of drop, keep, hash"],
    "invalid_hash_without_salt.yaml": ["privacy.salt: required when privacy.content is hash"],
    "invalid_not_a_mapping.yaml": ["receivers: must be a mapping"],
    "invalid_yaml_syntax.yaml": ["cannot read YAML"],
    "invalid_many.yaml": [
        "exporters: unknown key",
        "receivers.otlp.protocols.http.endpoint: must be HOST:PORT",
        "receivers.otlp.max_inflight_spans: must be a positive integer",
        "receivers.otlp.build_nice: must be an integer from 0 to 19, got 20",
        "storage.batch.max_rows: must be a positive integer",
        "admin.endpoint: must be HOST:PORT",
        "attribution.extra_keys: must be a list of attribute names",
    ],
}


def test_every_invalid_fixture_is_covered() -> None:
    assert {p.name for p in DATA.glob("invalid_*.yaml")} == set(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_config_reports_every_problem(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(DATA / name)
    problems = err.value.problems
    assert len(problems) == len(INVALID[name]), problems
    for expected in INVALID[name]:
        assert any(expected in p for p in problems), (expected, problems)
    assert "hunter22" not in str(err.value)


def test_content_keys_are_refused_as_extra_attribution_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "attribution:\n  extra_keys: [cost.center, gen_ai.prompt, input.value]\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert problem.startswith("attribution.extra_keys: 'gen_ai.prompt', 'input.value' carry prompt")
    assert "privacy.content" in problem


def test_policy_path_key_defaults_and_refuses_content(tmp_path: Path) -> None:
    assert load_config().attribution.policy_path_key == "tokenbook.policy.path"
    path = tmp_path / "c.yaml"
    path.write_text("attribution:\n  policy_path_key: acme.route\n", encoding="utf-8")
    assert load_config(path).attribution.policy_path_key == "acme.route"
    path.write_text("attribution:\n  policy_path_key: gen_ai.prompt\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert problem.startswith("attribution.policy_path_key: 'gen_ai.prompt' carries prompt or completion")


def test_memory_bounds_default_small_and_are_configurable(tmp_path: Path) -> None:
    cfg = load_config()
    assert cfg.spool.memory_bytes == 32 * 1024 * 1024
    assert cfg.receivers.otlp.max_inflight_bytes == 64 * 1024 * 1024
    path = tmp_path / "c.yaml"
    path.write_text(
        "storage:\n  spool:\n    memory_bytes: 0\nreceivers:\n  otlp:\n    max_inflight_bytes: 8MiB\n",
        encoding="utf-8",
    )
    cfg = load_config(path)
    assert (cfg.spool.memory_bytes, cfg.receivers.otlp.max_inflight_bytes) == (0, 8 * 1024 * 1024)
