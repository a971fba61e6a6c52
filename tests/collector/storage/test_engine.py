"""The embedded engine's settings (``storage.clickhouse.engine``) as the engine reports them once open,
its library's start-up pages handed back without losing anything, and both allocators bounded as
configured (the engine's decay, the C library heap's arenas and thresholds: ``heap``).

One engine per process, opened on one directory: each case of its server settings opens it in a child
process of its own. Whether it compiles expressions is a setting of each connection: that case opens
a store on the test process's engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.collector.collector_process import REPO
from tokenbook.collector.config import ConfigError, HeapConfig, load_config
from tokenbook.collector.storage.config import EngineConfig
from tokenbook.collector.storage.engine import (
    ALLOCATOR_ENV,
    HeapTuning,
    Released,
    engine_allocator_options,
    engine_library,
    release_startup_pages,
)
from tokenbook.collector.storage.store import Store

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


#: Opens a store, then reports the resident KiB of the pyarrow libraries the engine's package loaded
#: with it (all of it, and the clean pages no other process maps), before and after
#: `release_startup_pages`, and that the store still writes and reads.
_COMPANION_SCRIPT = """
import json, sys
from pathlib import Path
from tests.cli.seed_store import make_calls
from tokenbook.collector.storage.engine import release_startup_pages
from tokenbook.collector.storage.store import Store

def resident(folder):
    kib, name = {"Rss:": 0, "Private_Clean:": 0}, None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
            name = fields[5] if len(fields) > 5 else ""
        elif fields[0] in kib and name and name.startswith(folder):
            kib[fields[0]] += int(fields[1])
    return {"rss": kib["Rss:"], "private_clean": kib["Private_Clean:"]}

store = Store.open(data_dir=sys.argv[1])
store.migrate()
folder = str(Path(sys.modules["pyarrow"].__file__).resolve().parent) + "/"
before = resident(folder)
release_startup_pages()
after = resident(folder)
store.write(make_calls(10), [])
_, _, counted = store.query("SELECT count() FROM llm_calls")
store.close()
print(json.dumps({"before": before, "after": after, "rows": counted[0][0]}))
"""


@pytest.mark.e2e
def test_the_libraries_loaded_with_the_engine_are_handed_back_with_it(tmp_path: Path) -> None:
    """chDB imports pyarrow, which the store never runs: its pages go back with the engine's. The kernel
    takes back only the clean pages no other process maps (another process of the same installation
    with the engine loaded, such as the test runner itself, keeps the shared ones resident): all of
    those go, whatever else maps the files."""
    out = subprocess.run(
        [sys.executable, "-c", _COMPANION_SCRIPT, str(tmp_path / "store")],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=True,
    )  # fmt: skip
    got = json.loads(out.stdout.splitlines()[-1])
    before, after = got["before"], got["after"]
    assert before["rss"] > 4 * 1024  # the libraries are loaded and found
    # KiB. Which of their pages are this process's own depends on what else maps the files at the
    # time (the test runner, the pytest-xdist workers' engines): a few pages of slack, so that a run
    # where nearly all are shared checks what little is private instead of failing on one page.
    slack = 64
    assert after["private_clean"] <= before["private_clean"] // 20 + slack
    assert after["rss"] <= before["rss"] - before["private_clean"] * 9 // 10 + slack
    assert got["rows"] == 10


def test_the_memory_ceiling_is_the_engine_s_own_unless_configured() -> None:
    assert "max_server_memory_usage" not in EngineConfig().server_settings()
    assert EngineConfig(max_memory=768 * _MIB).server_settings()["max_server_memory_usage"] == str(768 * _MIB)


@pytest.mark.parametrize("jit", [False, True], ids=["default", "jit"])
def test_the_engine_compiles_to_machine_code_only_when_configured(chdb_dir: Path, jit: bool) -> None:
    """Every connection of the store (its own, and its pool's readers') runs with the setting."""
    store = Store.open(data_dir=chdb_dir, engine=EngineConfig(jit=True) if jit else EngineConfig())
    sql = "SELECT " + ", ".join(
        f"getSetting('{name}')"
        for name in ("compile_expressions", "compile_aggregate_expressions", "compile_sort_description")
    )
    try:
        with ThreadPoolExecutor(3) as pool:  # three at once: the pool's readers too
            answers = list(pool.map(lambda _: store.query(sql)[2], range(3)))
    finally:
        store.close()
    assert answers == [[(jit, jit, jit)]] * 3


def test_engine_settings_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "storage:\n  clickhouse:\n    engine:\n      mark_cache_size: 32MiB\n      max_memory: 0\n"
        "      release_startup_pages: false\n      jit: true\n",
        encoding="utf-8",
    )
    engine = load_config(path).clickhouse.engine
    assert (engine.mark_cache_size, engine.max_memory, engine.release_startup_pages, engine.jit) == (
        32 * _MIB,
        0,
        False,
        True,
    )
    path.write_text("storage:\n  clickhouse:\n    engine:\n      mark_cache_size: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    (problem,) = err.value.problems
    assert problem.startswith("storage.clickhouse.engine.mark_cache_size:")


def test_nothing_to_release_without_the_engine_s_maps(tmp_path: Path) -> None:
    # No /proc (another system) or no engine loaded: nothing is advised, nothing fails.
    assert release_startup_pages(tmp_path / "no-such-maps") == Released(0, 0)


#: Reports the engine allocator's decay as the engine itself states it (``system.jemalloc_stats``).
_DECAY_SCRIPT = """
import json, re, sys
from tokenbook.collector.storage.config import EngineConfig
from tokenbook.collector.storage.store import Store

store = Store.open(data_dir=sys.argv[1], engine=EngineConfig(**json.loads(sys.argv[2])))
_, _, rows = store.query("SELECT * FROM system.jemalloc_stats")
store.close()
print(re.search(r"opt.dirty_decay_ms: (-?\\d+)", rows[0][0]).group(1))
"""


def _decay_ms(tmp_path: Path, env: dict[str, str] | None = None, **engine: Any) -> int:
    environ = {k: v for k, v in os.environ.items() if k not in (ALLOCATOR_ENV, "MALLOC_CONF")}
    out = subprocess.run(
        [sys.executable, "-c", _DECAY_SCRIPT, str(tmp_path / "store"), json.dumps(engine)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=True, env={**environ, **(env or {})},
    )  # fmt: skip
    return int(out.stdout.splitlines()[-1])


@pytest.mark.e2e
def test_the_engine_s_allocator_hands_freed_pages_back_as_configured(tmp_path: Path) -> None:
    assert _decay_ms(tmp_path) == 250  # the default: a quarter of a second, not the engine's 5 s
    assert _decay_ms(tmp_path, dirty_decay=0) == 0
    assert _decay_ms(tmp_path, dirty_decay=1.5) == 1500
    # an operator's own options win over the configured decay
    assert _decay_ms(tmp_path, env={ALLOCATOR_ENV: "dirty_decay_ms:3000"}, dirty_decay=1.5) == 3000


def test_the_allocator_options_are_set_only_before_the_engine_loads() -> None:
    environ: dict[str, str] = {}
    loaded = engine_library() is not None  # this process may have opened an engine already
    assert engine_allocator_options(0.25, environ) is not loaded
    assert environ == ({} if loaded else {ALLOCATOR_ENV: "dirty_decay_ms:250"})
    if not loaded:
        environ = {ALLOCATOR_ENV: "narenas:1"}
        assert engine_allocator_options(0, environ)
        assert environ == {ALLOCATOR_ENV: "dirty_decay_ms:0,narenas:1"}


#: Tunes the heap as argv[1] (JSON HeapTuning) says, then reports what the C library did: the arenas
#: after eight threads allocated, and whether a 1 MiB block allocated after one was freed is mapped on
#: its own (the default threshold rises past it once one is freed).
_HEAP_SCRIPT = """
import ctypes, json, os, sys, tempfile, threading
from tokenbook.collector.storage.engine import HeapTuning, tune_heap

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
tuning = HeapTuning(**json.loads(sys.argv[1]))
if any(tuning):
    assert tune_heap(tuning)

FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in FIELDS.split()]
libc.mallinfo2.restype = Info

libc.free(libc.malloc(1 << 20))  # a mapped block freed: the default threshold rises past its size
before = libc.mallinfo2().hblks
block = libc.malloc(1 << 20)
mapped = libc.mallinfo2().hblks - before
libc.free(block)

held, go = [], threading.Barrier(8)
def allocate():
    go.wait()
    held.append(libc.malloc(4096))
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
with tempfile.NamedTemporaryFile() as f:
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    stream = libc.fopen(f.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    arenas = open(f.name).read().count("<heap nr=")
print(json.dumps({"arenas": arenas, "mapped": mapped}))
"""


def _heap(tuning: HeapTuning) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _HEAP_SCRIPT, json.dumps(tuning._asdict())],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=True,
    )  # fmt: skip
    result: dict[str, int] = json.loads(out.stdout.splitlines()[-1])
    return result


@pytest.mark.e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and malloc_info")
def test_the_heap_is_bounded_as_configured() -> None:
    untuned = _heap(HeapTuning(0, 0, 0))
    assert untuned["arenas"] > 2 and untuned["mapped"] == 0  # an arena per thread; the threshold rose
    tuned = _heap(HeapConfig().tuning())
    assert tuned == {"arenas": 2, "mapped": 1}


def test_heap_settings_from_the_config_file(tmp_path: Path) -> None:
    assert HeapConfig().tuning() == HeapTuning(arenas=2, mmap_threshold=256 * 1024, trim_threshold=4 * _MIB)
    path = tmp_path / "c.yaml"
    path.write_text(
        "heap:\n  arenas: 0\n  mmap_threshold: 1MiB\n  trim_threshold: 0\n"
        "storage:\n  clickhouse:\n    engine:\n      dirty_decay: 250ms\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.heap.tuning() == HeapTuning(arenas=0, mmap_threshold=_MIB, trim_threshold=0)
    assert config.clickhouse.engine.dirty_decay == 0.25
