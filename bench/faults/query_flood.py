"""Fault: a query flood: N concurrent worst-case allowed queries on ``/v1/query`` while spans arrive.

A real collector child gets ``--rate`` spans/s for ``--seconds`` (default 40 s). For the middle half
of the run, ``--clients`` threads (default 8) each send, back to back, the worst query the guard
allows: a self-join of two 100k-row ``numbers()`` scans that reads few rows, so only
``admin.query_timeout`` (``--timeout``, default 10 s) ends it. Meanwhile a probe sends one span every
half second and measures its *ledger latency*: from the acknowledgement to the moment
``v_calls`` shows it (through the same admin API, so it also waits for a query slot: a 429 is
retried after its ``Retry-After``), and a second probe times ``GET /readyz`` every 0.2 s. The
collector's RSS is sampled every second. Reported: ledger and readiness latency before, during and
after the flood, the queries' outcomes (completed, ended by the timeout, refused with 429), the time
until the ledger held every acknowledged span, then, after a stop, a restart that replays whatever
the log still held, and a check: sent / acknowledged / stored / lost / doubled for the load (lost
must be 0).

Loopback only, bounded time (about ``--seconds`` + 60 s). Run:
``.venv/bin/python -m bench.faults.query_flood [--seconds 40] [--clients 8]``
(writes ``bench/results/faults_query_flood.json``; with ``--clients 0``, the control run without
queries, ``faults_query_flood_control.json``).
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.faults.harness import (
    FaultyCollector,
    Load,
    ReadyzProbe,
    chat_request,
    percentile,
    replay_after_stop,
    report,
    scenario_result,
    stop_or_kill,
    verify,
    wait_caught_up,
    writer_activity,
)
from tokenbook.collector.query.api import AdminQueryClient, QueryBusy
from tokenbook.collector.storage.store import StoreError

TENANT = "qflood"
PROBE = "qprobe"
WORST_QUERY = (
    "SELECT count() FROM numbers(100000) AS a, numbers(100000) AS b"
    " WHERE cityHash64(a.number, b.number) % 7 = 3"
)


class Probe(threading.Thread):
    """One span at a time: acknowledged over OTLP/HTTP, then polled in ``v_calls`` until visible."""

    def __init__(self, collector: FaultyCollector) -> None:
        super().__init__(name="probe", daemon=True)
        self.collector = collector
        self.samples: list[tuple[float, float | None]] = []  # (time since start, ledger latency s)
        self.stop = threading.Event()
        self.client = AdminQueryClient(f"127.0.0.1:{collector.admin_port}", timeout_s=60)
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            body, (span_id,) = chat_request(PROBE, 1)
            conn = http.client.HTTPConnection("127.0.0.1", self.collector.http_port, timeout=30)
            try:
                conn.request(
                    "POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"}
                )
                ok = conn.getresponse().status == 200
            except OSError:
                ok = False
            finally:
                conn.close()
            if ok:
                acked = time.monotonic()
                latency = None
                while time.monotonic() - acked < 60:
                    try:
                        rows = self.client.query_readonly(
                            "SELECT count() FROM v_calls"
                            " WHERE tenant_id = {t:String} AND span_id = {s:String}",
                            {"t": PROBE, "s": span_id},
                        )[2]
                    except StoreError:
                        rows = [(0,)]
                    if rows[0][0]:
                        latency = time.monotonic() - acked
                        break
                    time.sleep(0.02)
                self.samples.append((round(acked - self.t0, 2), latency))
            self.stop.wait(0.5)


def flood(collector: FaultyCollector, clients: int, stop: threading.Event, timeout: float) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    durations: list[float] = []  # queries that ran (completed or ended by the timeout)
    busy_waits: list[float] = []  # time to the 429 answer
    lock = threading.Lock()

    def client() -> None:
        api = AdminQueryClient(f"127.0.0.1:{collector.admin_port}", timeout_s=timeout + 30, retry_busy=False)
        while not stop.is_set():
            started = time.monotonic()
            wait = 0.0
            try:
                api.query_readonly(WORST_QUERY)
                outcome = "completed"
            except QueryBusy as busy:
                outcome, wait = "busy (429)", busy.retry_after
            except StoreError as exc:
                text = str(exc)
                outcome = "timeout" if "TIMEOUT" in text.upper() else f"refused: {text[-80:]}"
            with lock:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                (busy_waits if wait else durations).append(time.monotonic() - started)
            stop.wait(wait)  # a refused client waits as asked, as a polite client does

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    return {"threads": threads, "outcomes": outcomes, "durations": durations, "busy": busy_waits}


def _latencies(samples: list[tuple[float, float | None]], start: float, end: float) -> dict[str, Any]:
    values = [v for t, v in samples if start <= t < end and v is not None]
    missing = sum(1 for t, v in samples if start <= t < end and v is None)
    return {
        "probes": len(values) + missing,
        "not_visible_within_60s": missing,
        "p50_ms": None if not values else round(1000 * (percentile(values, 0.5) or 0), 1),
        "p99_ms": None if not values else round(1000 * (percentile(values, 0.99) or 0), 1),
        "max_ms": None if not values else round(1000 * max(values), 1),
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=500, help="spans/s offered")
    parser.add_argument("--clients", type=int, default=8, help="concurrent query clients")
    parser.add_argument("--timeout", type=float, default=10.0, help="admin.query_timeout (s)")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tokenbook-faults-") as tmp:
        collector = FaultyCollector(Path(tmp) / "data", admin={"query_timeout": f"{args.timeout:g}s"}).start()
        load = Load(collector, tenant=TENANT, rate=args.rate, acked_file=Path(tmp) / "acked").start()
        probe, readyz = Probe(collector), ReadyzProbe(collector)
        readyz.t0 = probe.t0
        probe.start()
        readyz.start()
        rss: list[tuple[float, float | None]] = []
        quarter = args.seconds / 4

        def sample_for(seconds: float) -> None:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                rss.append((round(time.monotonic() - probe.t0, 1), collector.rss_mib()))
                time.sleep(min(1.0, max(until - time.monotonic(), 0)))

        sample_for(quarter)
        stop = threading.Event()
        flood_from = time.monotonic() - probe.t0
        queries = flood(collector, args.clients, stop, args.timeout)
        sample_for(2 * quarter)
        stop.set()
        flood_to = time.monotonic() - probe.t0
        for t in queries["threads"]:
            t.join(args.timeout + 30)
        sample_for(quarter)
        stats = load.stop()
        catch_up = wait_caught_up(collector, TENANT, stats.acked_spans)
        probe.stop.set()
        readyz.stop.set()
        probe.join(90)
        readyz.join(15)
        log_bytes_at_stop = int(collector.metric("spooled_bytes"))
        exit_code, stop_s = stop_or_kill(collector, "tokenbook-query-flood.log")
        writer = writer_activity(collector.log_path)
        replay = replay_after_stop(collector)
        check = verify(collector.data_dir, TENANT, Path(tmp) / "acked")
    durations = queries["durations"]
    samples = [m for _, m in rss if m is not None]
    return report(
        "query_flood" if args.clients else "query_flood_control",
        scenario_result(
            stats,
            check,
            catch_up_s=catch_up,
            clients=args.clients,
            query_timeout_s=args.timeout,
            worst_query=WORST_QUERY,
            query_outcomes=queries["outcomes"],
            query_p50_s=None if not durations else round(percentile(durations, 0.5) or 0, 2),
            query_refused_p50_ms=None
            if not queries["busy"]
            else round(1000 * (percentile(queries["busy"], 0.5) or 0), 1),
            ledger_latency_before_flood=_latencies(probe.samples, 0, flood_from),
            ledger_latency_during_flood=_latencies(probe.samples, flood_from, flood_to),
            ledger_latency_after_flood=_latencies(probe.samples, flood_to, 1e9),
            readyz_before_flood=readyz.summary(0, flood_from),
            readyz_during_flood=readyz.summary(flood_from, flood_to),
            readyz_after_flood=readyz.summary(flood_to),
            rss_mib_start=samples[0] if samples else None,
            rss_mib_peak=max(samples, default=None),
            rss_mib_samples=rss,
            log_bytes_at_stop=log_bytes_at_stop,
            **writer,
            final_exit_code=exit_code,
            stop_s=stop_s,
            **replay,
            seconds=round(time.monotonic() - started, 1),
            command=f".venv/bin/python -m bench.faults.query_flood --seconds {args.seconds:g} "
            f"--rate {args.rate:g} --clients {args.clients} --timeout {args.timeout:g}",
        ),
    )


if __name__ == "__main__":
    main()
