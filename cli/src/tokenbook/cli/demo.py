"""`tokenbook demo`: the main job end to end, on the embedded store.

It starts a real collector (a child process on free loopback ports), runs a multi-tenant agent
workload through the real OpenTelemetry SDK, `TokenbookSpanProcessor` and the OTLP/gRPC exporter,
waits until every billed call is in the ClickHouse ledger, then prints what people ask first: cost
by tenant and model, the top contexts, what prompt caching saved, which models are unpriced, what the
runaway agent's prompts were made of as its history grew, the tool loops, and the loop rule it tripped
(the collector runs with one: `_LOOP_RULE`).

The workload is synthetic (no model is called) but shaped like real traffic: agent sessions whose
`invoke_agent` wrapper repeats its children's usage (never billed twice), tool loops, a retry after
a rate limit, a response served from a cache, Anthropic prompt-cache reads and writes (some with a
one-hour lifetime), a reasoning model (half of its calls at the flex service tier), embeddings, a
long-context call above a price tier, a self-hosted model with no price, and one runaway session
(its prompt history growing call after call) stopped by its in-app budget.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from rich.console import Console
from rich.progress import Progress

from tokenbook.cli.context_report import prompt_table
from tokenbook.cli.output import format_money, format_tokens, print_result
from tokenbook.collector.query.api import AdminQueryClient
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.processor import BudgetExceeded, TokenbookSpanProcessor, attribute, budget

__all__ = ["cmd_demo"]

_DEFAULT_DATA_DIR = Path("tokenbook-demo-data")
_MARKER = ".tokenbook-demo"  # a data dir holding this file is a previous demo's and may be wiped
_SESSIONS = 24
#: The collector's loop rule: a support agent's tool loop of more than 6 model calls is a runaway.
_LOOP_RULE = {"name": "support-loop", "match": {"feature": "ticket-triage"}, "max_steps": 6}
_RUNAWAY = "ticket-runaway"


@dataclass(frozen=True)
class _Collector:
    proc: subprocess.Popen[bytes]
    grpc: str
    admin: str
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: How often the demo starts its collector on new ports when one of them was taken meanwhile.
_START_ATTEMPTS = 3


@contextmanager
def _collector(data_dir: Path, timeout_s: float = 120) -> Iterator[_Collector]:
    """A `tokenbook collector` child on free ports; SIGTERM (drain) on exit.

    The ports are picked free, then bound by the child a moment later: when another process took one
    meanwhile (the child exits saying the address is in use), the child is started again on new ports.
    """
    log = data_dir.parent / f"{data_dir.name}.collector.log"
    config = data_dir.parent / f"{data_dir.name}.collector.yaml"
    config.write_text(yaml.safe_dump({"budgets": {"loops": [_LOOP_RULE]}}), encoding="utf-8")
    for attempt in range(1, _START_ATTEMPTS + 1):
        grpc, http, admin = (f"127.0.0.1:{_free_port()}" for _ in range(3))
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tokenbook", "collector", "--data-dir", str(data_dir),
                 "--config", str(config), "--grpc", grpc, "--http", http, "--admin", admin],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            if _ready(proc, admin, log, timeout_s):
                break
        except BaseException:
            _stop(proc)
            raise
        if attempt == _START_ATTEMPTS or b"already in use" not in log.read_bytes():
            raise RuntimeError(f"the collector exited with {proc.returncode}; see {log}")
    try:
        yield _Collector(proc, grpc, admin, log)
    finally:
        _stop(proc)


def _ready(proc: subprocess.Popen[bytes], admin: str, log: Path, timeout_s: float) -> bool:
    """Wait until the collector answers ``/readyz``: True; False when it exited first."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{admin}/readyz", timeout=1) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the collector was not ready in {timeout_s:.0f}s; see {log}") from None
            time.sleep(0.2)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the collector drains) and wait."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


# --- the workload ------------------------------------------------------------------------------


class _Workload:
    """Agent sessions of three tenants; counts the model calls it makes (each is one ledger row)."""

    def __init__(self, tracer: Tracer, console: Console) -> None:
        self.tracer = tracer
        self.console = console
        self.rng = random.Random(42)
        self.calls = 0

    def chat(self, provider: str, model: str, input_tokens: int, output_tokens: int, **extra: object) -> None:
        """One model call span, shaped like `opentelemetry-instrumentation-genai-*` output."""
        op = str(extra.pop("operation", "chat"))
        error = extra.pop("error", None)
        attrs: dict[str, object] = {
            "gen_ai.operation.name": op,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.input.messages": '[{"role": "user", "content": "a prompt that is never stored"}]',
        }
        if op != "embeddings":
            attrs["gen_ai.usage.output_tokens"] = output_tokens
        attrs.update(extra)
        self.calls += 1
        with self.tracer.start_as_current_span(f"{op} {model}", attributes=attrs) as span:  # type: ignore[arg-type]
            if error:
                span.set_attribute("error.type", str(error))
                span.set_status(Status(StatusCode.ERROR, str(error)))

    def tool(self, name: str) -> None:
        attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        with self.tracer.start_as_current_span(f"execute_tool {name}", attributes=attrs):
            pass

    def agent(self, name: str) -> AbstractContextManager[Span]:
        attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name}
        return self.tracer.start_as_current_span(f"invoke_agent {name}", attributes=attrs)

    def support_session(self, n: int) -> None:
        """acme: a support agent on Claude with prompt caching, a tool loop and a wrapper span."""
        user = self.rng.choice(("alice", "bob", "carol"))
        who = {
            "tenant": "acme",
            "user": user,
            "project": "support-bot",
            "team": "cx",
            "feature": "ticket-triage",
        }
        with attribute(**who, context_id=f"ticket-{n}"), self.agent("SupportAgent") as agent:
            total_in = total_out = 0
            for step in range(self.rng.randint(2, 4)):
                prompt, out = self.rng.randint(3_000, 9_000), self.rng.randint(150, 700)
                if step == 0:  # the system prompt cached for an hour, the ticket for five minutes
                    cache = {"gen_ai.usage.cache_creation.input_tokens": 2_048,
                             "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 1_536,
                             "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 512}  # fmt: skip
                else:
                    cache = {"gen_ai.usage.cache_read.input_tokens": 2_048}
                self.chat("anthropic", "claude-sonnet-4-5", prompt, out, **cache)
                self.tool(self.rng.choice(("search_kb", "get_order", "refund_policy")))
                total_in, total_out = total_in + prompt, total_out + out
            # the wrapper repeats its children's summed usage, as agent frameworks do: never billed twice
            agent.set_attribute("gen_ai.usage.input_tokens", total_in)
            agent.set_attribute("gen_ai.usage.output_tokens", total_out)
            if n % 3 == 0:
                agent.set_attribute("tokenbook.outcome", "resolved")

    def research_session(self, n: int) -> None:
        """globex: retrieval (embeddings), a reasoning model, a cheap model with cached input."""
        who = {"tenant": "globex", "user": self.rng.choice(("dave", "erin")), "project": "research",
               "team": "analytics", "feature": "deep-research"}  # fmt: skip
        with (
            attribute(**who, session=f"research-{n}"),
            self.tracer.start_as_current_span("research workflow"),
        ):
            self.chat(
                "openai", "text-embedding-3-small", self.rng.randint(500, 4_000), 0, operation="embeddings"
            )
            reasoning = self.rng.randint(2_000, 12_000)
            output = reasoning + self.rng.randint(300, 1_500)
            tier = {"openai.response.service_tier": "flex"} if n % 2 == 0 else {}  # cheaper, slower
            self.chat("openai", "o3", self.rng.randint(4_000, 20_000), output,
                      **{"gen_ai.usage.reasoning.output_tokens": reasoning}, **tier)  # fmt: skip
            prompt = self.rng.randint(2_000, 6_000)
            self.chat("openai", "gpt-4o-mini", prompt, self.rng.randint(100, 400),
                      **{"gen_ai.usage.cache_read.input_tokens": prompt // 2})  # fmt: skip
            if n % 4 == 0:  # the same question again: served from the response cache, no model call
                self.chat("openai", "gpt-4o-mini", prompt, 250, **{"tokenbook.cache_hit": True})

    def review_session(self, n: int) -> None:
        """initech: long-context code review on Gemini, a retry after a 429, a self-hosted model."""
        who = {"tenant": "initech", "user": "frank", "project": "code-review", "team": "platform",
               "feature": "pr-review"}  # fmt: skip
        with attribute(**who, context_id=f"pr-{1000 + n}"), self.tracer.start_as_current_span("review PR"):
            long_context = n % 3 == 0
            prompt = self.rng.randint(210_000, 400_000) if long_context else self.rng.randint(20_000, 90_000)
            self.chat("gcp.gemini", "gemini-2.5-pro", 0, 0, error="rate_limit_exceeded")
            self.chat("gcp.gemini", "gemini-2.5-pro", prompt, self.rng.randint(800, 3_000),
                      **{"http.request.resend_count": 1})  # fmt: skip
            self.chat(
                "vllm", "initech-llama-3.1-70b-ft", self.rng.randint(1_000, 5_000), self.rng.randint(100, 800)
            )

    def runaway_session(self) -> None:
        """acme: an agent stuck in a tool loop whose prompt history grows by every search result; the
        collector's loop rule flags it, its 100k-token in-app budget stops it."""
        who = {"tenant": "acme", "user": "mallory", "project": "support-bot", "team": "cx",
               "feature": "ticket-triage"}  # fmt: skip
        # ~4 characters a token: the collector's estimate splits each call's input tokens like this text
        system = {"role": "system", "parts": [{"type": "text", "content": "Triage the ticket. " * 210}]}
        history: list[dict[str, object]] = [
            {"role": role, "parts": [{"type": "text", "content": "An earlier turn. " * 530}]}
            for role in ("user", "assistant")
        ]
        question = {"role": "user", "parts": [{"type": "text", "content": "Charged twice? " * 133}]}
        with (
            attribute(**who, context_id=_RUNAWAY),
            budget(max_tokens=100_000, max_cost="0.50", name="SupportAgent per ticket") as b,
            self.agent("SupportAgent"),
        ):
            try:
                for step in range(50):
                    messages = json.dumps([system, *history, question])
                    self.chat("anthropic", "claude-sonnet-4-5", 6_000 + 2_500 * step, 900,
                              **{"gen_ai.input.messages": messages})  # fmt: skip
                    self.tool("search_kb")
                    thought = {"type": "text", "content": "Let me search the knowledge base again. " * 70}
                    call = {"type": "tool_call", "id": f"call-{step}", "name": "search_kb", "arguments": "{}"}
                    found = {"type": "tool_call_response", "id": f"call-{step}", "response": "a match " * 900}
                    history += [
                        {"role": "assistant", "parts": [thought, call]},
                        {"role": "tool", "parts": [found]},
                    ]
                    b.check()
            except BudgetExceeded as exc:
                self.console.print(f"[yellow]in-app budget stopped a runaway agent:[/] {exc}")


# --- the report --------------------------------------------------------------------------------

_TOTALS = ("calls", "unpriced_calls", "input_tokens", "output_tokens", "cache_read_tokens", "total_cost")
#: title, storage/sql file, extra parameters, columns shown
_REPORTS: tuple[tuple[str, str, dict[str, object], tuple[str, ...]], ...] = (
    ("Cost by tenant", "report_by.sql", {"by": "tenant", "by_day": 0}, ("key", *_TOTALS)),
    ("Cost by model", "report_by.sql", {"by": "model", "by_day": 0}, ("key", *_TOTALS)),
    ("Top contexts", "report_contexts.sql", {"limit": 8},
     ("context_id", "tenant_id", "calls", "tool_calls", "retries", "input_tokens", "total_cost")),
    ("Cache savings", "report_cache_savings.sql", {},
     ("tenant_id", "model", "cached_input_tokens", "paid_for_cached_input", "saved_by_prompt_cache",
      "response_cache_hits")),
    ("Unpriced models: stored and counted, never priced as 0", "unpriced_models.sql",
     {"model": "", "provider": ""}, ("provider", "model", "calls", "input_tokens", "output_tokens")),
)  # fmt: skip


def _print_reports(client: AdminQueryClient, console: Console) -> bool:
    """Print the reports; True when the per-tenant costs add up exactly to the ledger total."""
    now = datetime.now(UTC)
    window = {"since": now - timedelta(days=1), "until": now + timedelta(minutes=1), "tenant": ""}
    by_tenant: list[Any] = []
    for title, sql_file, extra, shown in _REPORTS:
        console.rule(title)
        columns, types, rows = client.query_readonly(render_query(sql_file, "tokenbook"), window | extra)
        if not rows:  # an empty result carries no column names
            console.print("(nothing yet)")
            continue
        keep = [columns.index(c) for c in shown]
        print_result(
            [str(extra.get("by", c)) if c == "key" else c for c in shown],
            [types[i] for i in keep],
            [[row[i] for i in keep] for row in rows],
            "table",
            totals="by" in extra,
        )
        if extra.get("by") == "tenant":
            by_tenant = [row[columns.index("total_cost")] for row in rows]
    calls, unpriced, hits, tokens_in, tokens_out, total = client.query_readonly(
        render_query("ledger_totals.sql", "tokenbook"), window
    )[2][0]
    exact: bool = sum((c for c in by_tenant if c is not None), Decimal(0)) == total
    console.rule("Ledger")
    console.print(
        f"{format_tokens(calls)} calls ({format_tokens(unpriced)} unpriced, {format_tokens(hits)} served "
        f"from cache), {format_tokens(tokens_in)} input and {format_tokens(tokens_out)} output tokens, "
        f"{format_money(total)} USD priced (exactly {format_money(total, exact=True)}). Per-tenant costs "
        f"add up to the ledger total exactly: {'yes' if exact else 'NO'}."
    )
    return exact


def _print_runaway(client: AdminQueryClient, console: Console) -> bool:
    """The runaway agent's prompt call by call, the tool loops, and the loop rule's crossing; True when
    the crossing was recorded."""
    now = datetime.now(UTC)
    window = {"since": now - timedelta(days=1), "until": now + timedelta(minutes=1), "tenant": ""}
    console.rule(f"Prompt anatomy of {_RUNAWAY}: its history keeps growing")
    sql = render_query("report_context_calls.sql", "tokenbook")
    columns, _, rows = client.query_readonly(sql, {"context": _RUNAWAY, "tenant": ""})
    print_result(*prompt_table(columns, rows), "table")
    console.rule("Tool loops: model calls after a tool call, per context")
    sql = render_query("report_loops.sql", "tokenbook")
    columns, types, rows = client.query_readonly(sql, window | {"limit": 5})
    shown = ("context_id", "loop_steps", "loop_tokens", "prompt_growth_per_step", "loop_cost")
    keep = [columns.index(c) for c in shown] if rows else []
    print_result(shown, [types[i] for i in keep], [[r[i] for i in keep] for r in rows], "table")
    console.rule(
        f"Loop rule {_LOOP_RULE['name']!r}: more than {_LOOP_RULE['max_steps']} model calls in a loop"
    )
    events = _wait_for_loop_events(client, window)
    for event in events:
        console.print(f"[yellow]loop alert:[/] {event[-1]}")
    if not events:
        console.print("[red]no loop crossing was recorded[/]")
    return bool(events)


def _wait_for_loop_events(
    client: AdminQueryClient, window: dict[str, Any], timeout_s: float = 30
) -> list[tuple[Any, ...]]:
    """Poll until the collector has recorded a loop crossing (checked about once a second, after the
    per-context aggregate is recomputed)."""
    sql = render_query("report_loop_events.sql", "tokenbook")
    deadline = time.monotonic() + timeout_s
    while True:
        rows = client.query_readonly(sql, window)[2]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


def _wait_for_ledger(client: AdminQueryClient, expected: int, timeout_s: float = 60) -> int:
    """Poll until the ledger holds `expected` billed calls and the per-context aggregate counts them
    all (ingest and the aggregate refresh are asynchronous after the ack)."""
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline:
        seen = int(client.query_readonly("SELECT count() FROM v_calls")[2][0][0])
        if seen >= expected:
            counted = client.query_readonly("SELECT sum(calls) FROM v_context_costs")[2][0][0]
            if counted is not None and int(counted) >= seen:
                return seen
        time.sleep(0.25)
    return seen


def _prepare(data_dir: Path) -> None:
    if data_dir.exists():
        if not (data_dir / _MARKER).exists():
            raise SystemExit(f"tokenbook demo: {data_dir} exists and is not a demo's; pass --data-dir")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / _MARKER).touch()


def _shell_path(path: Path) -> str:
    """`path` as short as it can be typed here (relative to the working directory when inside it)."""
    try:
        relative = str(path.relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(path))
    return shlex.quote(relative or ".")


_NEXT_STEPS = (
    "report --by model",
    "report --context ticket-runaway",
    'sql "SELECT tenant_id, context_id, calls, tool_calls, total_cost FROM v_context_costs LIMIT 5"',
)


def command_name() -> str:
    """How to type `tokenbook` here: its name when PATH finds this one, else a path that works
    (``.venv/bin/tokenbook`` after `make demo`), else ``python -m tokenbook``."""
    script = Path(sys.executable).parent / "tokenbook"
    found = shutil.which("tokenbook")
    if found is not None and (not script.exists() or Path(found).resolve() == script.resolve()):
        return "tokenbook"
    if script.exists():
        try:
            return str(script.relative_to(Path.cwd()))
        except ValueError:
            return str(script)
    return f"{sys.executable} -m tokenbook"


def cmd_demo(args: argparse.Namespace) -> int:
    """`tokenbook demo`: start a collector, run a multi-tenant agent workload through the real SDK,
    processor and OTLP exporter, and print cost per tenant, model and context; returns the exit code."""
    console = Console(highlight=False)
    data_dir = Path(args.data_dir or _DEFAULT_DATA_DIR).resolve()
    _prepare(data_dir)
    started = time.monotonic()
    with _collector(data_dir) as collector:
        console.print(f"collector up: OTLP/gRPC {collector.grpc}, admin {collector.admin}, store {data_dir}")
        client = AdminQueryClient(collector.admin)
        with Progress(console=console, transient=True) as progress:
            provider = TracerProvider(resource=Resource.create({"service.name": "demo-agents"}))
            exporter = OTLPSpanExporter(endpoint=f"http://{collector.grpc}", insecure=True)
            tokenbook = TokenbookSpanProcessor(BatchSpanProcessor(exporter))
            provider.add_span_processor(tokenbook)
            workload = _Workload(provider.get_tracer("tokenbook.cli.demo"), console)
            task = progress.add_task("agent sessions", total=_SESSIONS * 3 + 1)
            for n in range(_SESSIONS):
                for session in (workload.support_session, workload.research_session, workload.review_session):
                    session(n)
                    progress.advance(task)
            workload.runaway_session()
            progress.advance(task)
            provider.force_flush()
            provider.shutdown()
            expected = workload.calls
            progress.add_task(f"waiting for {expected} billed calls in the ledger", total=None)
            seen = _wait_for_ledger(client, expected)
        console.print(f"{seen} billed calls in the ledger after {time.monotonic() - started:.1f}s\n")
        ok = _print_reports(client, console) and seen == expected
        ok = _print_runaway(client, console) and ok
    console.print(f"\nThe store is kept in {data_dir}. Try:")
    sys.stdout.flush()
    program, where = command_name(), _shell_path(data_dir)
    for command in _NEXT_STEPS:  # one per line, never wrapped: each pastes as it is
        print(f"  {program} {command} --data-dir {where}", flush=True)
    if not ok:
        console.print(f"[red]expected {expected} billed calls, the ledger holds {seen}[/]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(cmd_demo(argparse.Namespace(data_dir=os.environ.get("TOKENBOOK_DEMO_DIR"))))
