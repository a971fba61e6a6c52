"""The dedup memory keys spans by tenant too: storage keeps one row per (tenant, trace, span)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.collector.collector_process import SpanFactory
from tests.hypothesis_profiles import examples
from tokenbook.collector.decode.pool import DecoderPool
from tokenbook.collector.ingest.dedup import KEY_BYTES, RecentSpanKeys, keys_array, record_key, span_key
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.storage.store import KeySlice
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.genai.pricing.catalog import PriceCatalog


def test_the_same_span_ids_from_two_tenants_are_both_kept(tmp_path: Path) -> None:
    """Failed before: tenant B's span was dropped as a duplicate of tenant A's."""
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 24, segment_bytes=1 << 20)
    wal.open()
    calls: list[str] = []
    ingestor = Ingestor(
        RowBuilder(PriceCatalog()),
        DecoderPool(pipeline_keys((), "drop"), 0),
        RecentSpanKeys(1000),
        wal,
        IngestMetrics(),
        max_inflight_spans=1000,
        storage_up=lambda: True,
        on_calls=lambda batch: calls.extend(c.tenant_id for c in batch),
    )
    try:
        request = encode_spans(SpanFactory().chats(1, tenant="a"))
        ingestor.export_protobuf(request.SerializeToString())
        ingestor.export_protobuf(request.SerializeToString())  # a re-delivery: dropped
        ingestor.export_protobuf(request.SerializeToString(), tenant="b")  # same IDs, another tenant
        assert calls == ["a", "b"]
        assert ingestor.metrics.snapshot()["deduplicated_spans"] == 1
    finally:
        wal.close()


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _k(i: int) -> bytes:
    return i.to_bytes(KEY_BYTES, "big")  # some end in zero bytes: numpy strings must keep them


def _slice(keys: list[int], since: float, until: float) -> KeySlice:
    utc = partial(datetime.fromtimestamp, tz=UTC)
    return KeySlice(b"".join(map(_k, keys)), utc(since), utc(until))


def test_keys_are_16_bytes_and_match_the_hex_form() -> None:
    key = record_key("acme", bytes.fromhex("ab" * 16), bytes.fromhex("cd" * 8))
    assert len(key) == KEY_BYTES and key == span_key("acme", "ab" * 16, "cd" * 8)
    assert key != span_key("other", "ab" * 16, "cd" * 8)


def test_unseen_and_remember_see_live_and_frozen_generations() -> None:
    keys = RecentSpanKeys(16)  # generations of 2 keys
    assert keys.remember([_k(1), _k(2), _k(1)]) == [_k(1), _k(2)]  # a full generation: frozen
    assert keys.remember([_k(3)]) == [_k(3)]  # live
    assert keys.unseen([_k(1), _k(4), _k(3), _k(4), _k(5), _k(0)]) == [1, 4, 5]
    assert keys.remember([_k(2), _k(4)]) == [_k(4)] and len(keys) == 4
    assert _k(1) in keys and _k(4) in keys and _k(6) not in keys


def test_at_most_max_keys_the_oldest_generation_forgotten_first() -> None:
    keys = RecentSpanKeys(16)
    for i in range(0, 40, 2):
        keys.remember([_k(i), _k(i + 1)])
        assert len(keys) <= 16
    assert len(keys) == 16 and _k(39) in keys and _k(24) in keys and _k(23) not in keys
    assert keys.unseen([_k(0), _k(30)]) == [0]  # forgotten: storage deduplicates it


def test_the_horizon_follows_the_warm_up_and_the_evictions() -> None:
    clock = _Clock(1000.0)
    keys = RecentSpanKeys(16, clock=clock)
    assert keys.horizon == 1000.0  # nothing logged before creation is known
    added = keys.warm([_slice([1, 2], 700, 1000), _slice([3, 4, 5, 6], 400, 700), _slice([7], 100, 400)])
    assert added == 7 and keys.horizon == 100.0 and _k(5) in keys
    full = RecentSpanKeys(4, clock=clock)
    assert full.warm([_slice([1, 2], 700, 1000), _slice([3, 4, 5], 400, 700)]) == 2  # no room for 3 more
    assert full.horizon == 700.0 and _k(3) not in full
    horizons = []
    for second in range(1001, 1010):  # a generation of 2 live keys frozen each second
        clock.now = second + 0.5
        keys.remember([_k(100 + 2 * second), _k(101 + 2 * second)])
        horizons.append(keys.horizon)
    # 7 warm keys + 2 a second: the warm generations are forgotten first, then the oldest live one
    assert horizons == [100.0, 100.0, 100.0, 100.0, 400.0, 700.0, 700.0, 1000.0, 1001.5]
    assert len(keys) == 16 and _k(7) not in keys


def test_a_batch_is_looked_up_in_every_generation_at_once() -> None:
    keys = RecentSpanKeys(1000)  # generations of 125 keys
    keys.warm([_slice(list(range(0, 500, 2)), 0, 1)])  # the even keys below 500, one warm generation
    keys.remember([_k(i) for i in range(1, 300, 2)])  # odd keys below 300: one frozen generation, 25 live
    assert keys.unseen([_k(i) for i in range(600)]) == list(range(301, 500, 2)) + list(range(500, 600))


_HALVES = st.sampled_from([bytes(8), b"\xff" * 8, b"\x01" * 8, b"\x80" + bytes(7)])  # few: shared often
_KEYS = st.builds(lambda a, b: a + b, _HALVES, st.one_of(_HALVES, st.binary(min_size=8, max_size=8)))


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.lists(_KEYS, max_size=12), max_size=12), st.lists(_KEYS, max_size=20))
def test_keys_sharing_their_first_half_are_told_apart(batches: list[list[bytes]], probe: list[bytes]) -> None:
    """Frozen generations are searched by the keys' first 8 bytes: keys that share them (rare among
    digests) are still found, or not, by all 16."""
    keys = RecentSpanKeys(10_000)
    keys.generation_keys = 3  # freeze often
    known: set[bytes] = set()
    for batch in batches:
        fresh = keys.remember(batch)
        assert fresh == list(dict.fromkeys(k for k in batch if k not in known))
        known.update(batch)
    first = {k: i for i, k in reversed(list(enumerate(probe)))}
    assert keys.unseen(probe) == sorted(i for k, i in first.items() if k not in known)
    assert all((k in keys) == (k in known) for k in probe)


# One step of two requests racing through the memory (`Ingestor._append_request`): a request starts
# (reads `frozen_version`, then `unseen`), or ends (`remember` of what `unseen` let through), or the
# warm-up adds an older generation of keys logged before.
_STEPS: st.SearchStrategy[list[tuple[str, str, list[bytes]]]] = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.sampled_from("ab"), st.lists(_KEYS, max_size=5)),
        st.tuples(st.just("end"), st.sampled_from("ab"), st.just([])),
        st.tuples(st.just("warm"), st.just(""), st.lists(_KEYS, min_size=1, max_size=4)),
    ),
    max_size=30,
)


@settings(max_examples=examples(300), deadline=None)
@given(_STEPS)
def test_racing_requests_remember_each_key_once_whatever_froze_between(
    steps: list[tuple[str, str, list[bytes]]],
) -> None:
    """`remember` after `unseen` returns exactly the keys the memory did not hold at that moment,
    whether generations froze, or the warm-up added one, since the request's `unseen` (then it looks
    them up again), or nothing changed (then it need not)."""
    keys = RecentSpanKeys(10_000)
    keys.generation_keys = 3  # freeze often
    known: set[bytes] = set()
    running: dict[str, tuple[int, list[bytes]]] = {}
    for step, request, batch in steps:
        if step == "start":
            frozen = keys.frozen_version
            running[request] = (frozen, [batch[i] for i in keys.unseen(batch)])
        elif step == "end" and request in running:
            frozen, fresh = running.pop(request)
            assert keys.remember(fresh, unseen_at=frozen) == [k for k in fresh if k not in known]
            known.update(fresh)
        elif step == "warm":
            new = [k for k in batch if k not in known]
            assert keys.older(keys_array(b"".join(new)), 0.0, 1.0)
            known.update(new)
    assert all((k in keys) == (k in known) for step in steps for k in step[2])
