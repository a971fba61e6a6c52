"""Fault: one flipped bit in the middle of a write-ahead log segment holding acknowledged requests.

With storage down, ``--requests`` requests of ``--batch`` spans are acknowledged (they are only in the
log). The collector is killed (``kill -9``), one bit in the middle of the segment is flipped, storage
comes back and the collector starts again: replay skips the damaged record only (it resynchronises on
the next intact frame), logs it and counts it in ``tokenbook_collector_wal_corrupt_records_total``.
Expected: exactly one request's spans lost, every other acknowledged span in the ledger once.

Run: ``.venv/bin/python -m bench.faults.corrupt_segment [--requests 10] [--batch 200]``
(about 20 s; writes ``bench/results/faults_corrupt_segment.json``).
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.faults.harness import FaultyCollector, LoadStats, chat_request, report, scenario_result, verify


def _metric(collector: FaultyCollector, name: str) -> float:
    try:
        return collector.metric(name)
    except KeyError:
        return -1


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--batch", type=int, default=200, help="spans per request")
    args = parser.parse_args()
    started = time.monotonic()
    stats = LoadStats()
    with tempfile.TemporaryDirectory(prefix="tokenbook-faults-") as tmp:
        collector = FaultyCollector(Path(tmp) / "data").start()
        collector.storage("down")
        acked_file = Path(tmp) / "acked"
        with acked_file.open("w", encoding="ascii") as acked:
            for _ in range(args.requests):
                body, ids = chat_request("corrupt", args.batch)
                stats.sent_spans += len(ids)
                conn = http.client.HTTPConnection("127.0.0.1", collector.http_port, timeout=30)
                conn.request(
                    "POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"}
                )
                status = conn.getresponse().status
                conn.close()
                stats.requests += 1
                stats.statuses[f"http {status}"] = stats.statuses.get(f"http {status}", 0) + 1
                if status == 200:
                    stats.acked_spans += len(ids)
                    acked.write("\n".join(ids) + "\n")
        collector.kill()
        segment = max((collector.data_dir / "wal").glob("*.wal"), key=lambda p: p.stat().st_size)
        data = bytearray(segment.read_bytes())
        flipped_at = len(data) // 2
        data[flipped_at] ^= 0x04
        segment.write_bytes(bytes(data))
        collector.storage("up")
        restarted = time.monotonic()
        collector.start()
        while not collector.drained() and time.monotonic() - restarted < 120:
            time.sleep(0.1)
        catch_up = round(time.monotonic() - restarted, 2)
        corrupt = _metric(collector, "wal_corrupt_records_total")
        exit_code = collector.stop()
        log = collector.log()
        check = verify(collector.data_dir, "corrupt", acked_file)
    return report(
        "corrupt_segment",
        scenario_result(
            stats,
            check,
            catch_up_s=catch_up,  # from the restart until the log was empty (start-up included)
            segment_bytes=len(data),
            flipped_byte=flipped_at,
            lost_requests=check["lost"] / args.batch,
            wal_corrupt_records=int(corrupt),
            damage_logged="damaged bytes" in log,
            final_exit_code=exit_code,
            seconds=round(time.monotonic() - started, 1),
            command=f".venv/bin/python -m bench.faults.corrupt_segment --requests {args.requests} "
            f"--batch {args.batch}",
        ),
    )


if __name__ == "__main__":
    main()
