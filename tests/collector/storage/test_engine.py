"""The embedded engine's settings (``storage.clickhouse.engine``) as the engine reports them once open,
and its library's start-up pages handed back without losing anything.

One engine per process, opened on one directory: each case opens it in a child process of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.collector.collector_process import REPO
from tokenbook.collector.config import ConfigError, load_config
from tokenbook.collector.storage.config import EngineConfig
from tokenbook.collector.storage.engine import Released, release_startup_pages

_MIB = 1024 * 1024

#: Opens the store with the engine settings of argv[2] (JSON, EngineConfig fields), writes and reads
#: rows, hands the library's pages back, writes and reads again; prints what the engine reports.
_SCRIPT = """
import json, sys
from tests.cli.seed_store import make_calls
from tokenbook.collector.storage.config import EngineConfig
from tokenbook.collector.storage.engine import release_startup_pages
from tokenbook.collector.storage.store import Store

engine = EngineConfig(**json.loads(sys.argv[2]))
store = Store.open(data_dir=sys.argv[1], engine=engine)
store.migrate()
names = ("mark_cache_size", "index_mark_cache_size", "primary_index_cache_size",
         "uncompressed_cache_size", "compiled_expression_cache_size", "max_server_memory_usage")
_, _, rows = store.query("SELECT name, value FROM system.server_settings WHERE name IN {n:Array(String)}",
                         {"n": list(names)})
calls = make_calls(40)
store.write(calls[:20], [])
released = release_startup_pages()
store.write(calls[20:], [])
_, _, counted = store.query("SELECT count(), uniqExact(span_id) FROM llm_calls")
store.close()
print(json.dumps({"settings": dict(rows), "released": released._asdict(), "rows": list(counted[0])}))
"""


def _open(tmp_path: Path, **engine: Any) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "store"), json.dumps(engine)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


@pytest.mark.e2e
def test_the_engine_runs_with_the_configured_caches_and_ceiling(tmp_path: Path) -> None:
    got = _open(
        tmp_path,
        mark_cache_size=32 * _MIB,
        index_mark_cache_size=4 * _MIB,
        primary_index_cache_size=8 * _MIB,
        uncompressed_cache_size=8 * _MIB,
        compiled_expression_cache_size=2 * _MIB,
        max_memory=768 * _MIB,
    )
    assert got["settings"] == {
        "mark_cache_size": str(32 * _MIB),
        "index_mark_cache_size": str(4 * _MIB),
        "primary_index_cache_size": str(8 * _MIB),
        "uncompressed_cache_size": str(8 * _MIB),
        "compiled_expression_cache_size": str(2 * _MIB),
        "max_server_memory_usage": str(768 * _MIB),
    }
    # the pages were handed back, and inserts and queries after that see every row
    assert got["released"]["mappings"] > 0 and got["released"]["bytes"] > 100 * _MIB
    assert got["rows"] == [40, 40]


@pytest.mark.e2e
def test_the_default_caches_are_small_and_the_ceiling_is_the_engine_s(tmp_path: Path) -> None:
    got = _open(tmp_path)
    settings = got["settings"]
    assert settings["mark_cache_size"] == str(64 * _MIB)
    assert settings["index_mark_cache_size"] == settings["primary_index_cache_size"] == str(16 * _MIB)
    assert settings["compiled_expression_cache_size"] == str(16 * _MIB)
    assert settings["uncompressed_cache_size"] == "0"
    assert int(settings["max_server_memory_usage"]) > 1024 * _MIB  # the engine's: 90% of the RAM
    assert got["rows"] == [40, 40]


def test_the_memory_ceiling_is_the_engine_s_own_unless_configured() -> None:
    assert "max_server_memory_usage" not in EngineConfig().server_settings()
    assert EngineConfig(max_memory=768 * _MIB).server_settings()["max_server_memory_usage"] == str(768 * _MIB)


def test_engine_settings_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "storage:\n  clickhouse:\n    engine:\n      mark_cache_size: 32MiB\n      max_memory: 0\n"
        "      release_startup_pages: false\n",
        encoding="utf-8",
    )
    engine = load_config(path).clickhouse.engine
    assert (engine.mark_cache_size, engine.max_memory, engine.release_startup_pages) == (32 * _MIB, 0, False)
    path.write_text("storage:\n  clickhouse:\n    engine:\n      mark_cache_size: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert problem.startswith("storage.clickhouse.engine.mark_cache_size:")


def test_nothing_to_release_without_the_engine_s_maps(tmp_path: Path) -> None:
    # No /proc (another system) or no engine loaded: nothing is advised, nothing fails.
    assert release_startup_pages(tmp_path / "no-such-maps") == Released(0, 0)
