"""Fault: poison rows next to a victim tenant's steady load, across a restart.

A victim tenant exports at ``--rate`` spans/s the whole time. Meanwhile, at every phase:

* a span of ``10^11`` output tokens of gpt-4o (its cost, 10^6 USD, does not fit ``Decimal(18, 12)``):
  rejected before the acknowledgement (``partial_success``, ``limits.max_tokens_per_call``);
* one request of 101 spans in 101 different months (the collector runs with ``limits.max_span_age: 0``,
  i.e. backfilling): acknowledged, and stored in inserts of at most 100 partitions;
* before the collector starts, a poison row already in its write-ahead log (acknowledged by a
  collector without the bounds): storage refuses it, the writer isolates and quarantines it.

Halfway, the collector is restarted (SIGTERM, start). The victim's acknowledged spans must all be in
the ledger exactly once with exact totals; the script also reports how long the ledger took to catch
up with the acknowledged spans after the load stopped.

Run: ``.venv/bin/python -m bench.faults.poison_rows [--rate 1000] [--phase 8]``
(about 40 s; writes ``bench/results/faults_poison_rows.json``).
"""

from __future__ import annotations

import argparse
import http.client
import os
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bench.faults.harness import (
    FaultyCollector,
    Load,
    drain_and_stop,
    report,
    scenario_result,
    verify,
    wait_caught_up,
)

_seq = iter(range(1, 1 << 40))


def _request(tenant: str, starts: list[int], output_tokens: int) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "poison"
    spans = rs.scope_spans.add().spans
    for start in starts:
        i = next(_seq)
        span = spans.add(
            trace_id=(os.getpid() << 80 | 1 << 64 | i).to_bytes(16, "big"),
            span_id=(i | 1 << 61).to_bytes(8, "big"),
            name="chat gpt-4o",
            start_time_unix_nano=start,
            end_time_unix_nano=start + 1_000_000,
        )
        for key, value in (
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.provider.name", "openai"),
            ("gen_ai.request.model", "gpt-4o"),
            ("tenant.id", tenant),
        ):
            span.attributes.add(key=key).value.string_value = value
        span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 100
        span.attributes.add(key="gen_ai.usage.output_tokens").value.int_value = output_tokens
    body: bytes = request.SerializeToString()
    return body


def _post(collector: FaultyCollector, body: bytes) -> tuple[int, int]:
    """(HTTP status, rejected spans)."""
    conn = http.client.HTTPConnection("127.0.0.1", collector.http_port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status != 200:
        return response.status, 0
    return 200, ExportTraceServiceResponse.FromString(data).partial_success.rejected_spans


def _seed_poison(wal_dir: Path) -> None:
    """A poison row in the log, as a collector without span bounds would have acknowledged it."""
    from tokenbook.collector.decode.spans import SpanRecord
    from tokenbook.collector.ingest.rows import RowBuilder
    from tokenbook.collector.storage.rowcodec import encode_record
    from tokenbook.collector.wal.log import WriteAheadLog
    from tokenbook.genai.pricing.catalog import PriceCatalog

    now = time.time_ns()
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 50,
        "tenant.id": "poison",
    }
    span = SpanRecord(
        os.urandom(16), os.urandom(8), b"", "chat gpt-4o", now, now + 1, False, "svc", attrs, ""
    )
    (call,) = RowBuilder(PriceCatalog()).build([span]).calls
    # 10^11 output tokens at 10 USD per million: 10^6 USD, one more digit than Decimal(18, 12) holds
    huge = Decimal("1000000.000000000000")
    call = call._replace(output_tokens=10**11, output_cost=huge, total_cost=huge + (call.input_cost or 0))
    wal = WriteAheadLog(wal_dir, max_bytes=1 << 30, segment_bytes=16 << 20)
    wal.open()
    wal.append(*encode_record([call], []))
    wal.close()


def _poison_round(collector: FaultyCollector) -> dict[str, Any]:
    now = time.time_ns()
    tokens = _post(collector, _request("poison", [now], 10**11))
    months = [int(datetime(2015 + m // 12, 1 + m % 12, 15, tzinfo=UTC).timestamp() * 1e9) for m in range(101)]
    backfill = _post(collector, _request("backfill", months, 50))
    return {"huge_tokens": tokens, "101_months": backfill}


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000, help="victim spans/s offered")
    parser.add_argument(
        "--phase", type=float, default=8.0, help="seconds of load before and after the restart"
    )
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tokenbook-faults-") as tmp:
        data = Path(tmp) / "data"
        _seed_poison(data / "wal")
        collector = FaultyCollector(data, limits={"max_span_age": 0}).start()
        load = Load(collector, tenant="victim", rate=args.rate, acked_file=Path(tmp) / "acked").start()
        rounds = []
        time.sleep(1)
        rounds.append(_poison_round(collector))
        time.sleep(args.phase)
        collector.stop()
        _seed_poison(data / "wal")  # and one more waiting in the log at the restart
        collector.start()
        rounds.append(_poison_round(collector))
        time.sleep(args.phase)
        stats = load.stop()
        catch_up = wait_caught_up(collector, "victim", stats.acked_spans)
        backfilled = collector.scalar("SELECT count() FROM v_calls WHERE tenant_id = 'backfill'")
        quarantined = collector.scalar("SELECT count() FROM quarantine FINAL WHERE state = 'quarantined'")
        poison_stored = collector.scalar("SELECT count() FROM v_calls WHERE tenant_id = 'poison'")
        quarantined_metric = collector.metric("quarantined_rows_total")
        exit_code = drain_and_stop(collector)
        check = verify(collector.data_dir, "victim", Path(tmp) / "acked")
    return report(
        "poison_rows",
        scenario_result(
            stats,
            check,
            catch_up_s=catch_up,
            poison_answers=rounds,  # (HTTP status, rejected spans) per poison request
            backfill_spans_stored=backfilled,  # of 2 x 101
            poison_rows_in_ledger=poison_stored,
            quarantined_rows=quarantined,
            quarantined_rows_metric_after_restart=int(quarantined_metric),
            final_exit_code=exit_code,
            seconds=round(time.monotonic() - started, 1),
            command=f".venv/bin/python -m bench.faults.poison_rows --rate {args.rate:g} "
            f"--phase {args.phase:g}",
        ),
    )


if __name__ == "__main__":
    main()
