"""Loopback stand-ins for the OpenAI, Anthropic, Gemini and Bedrock HTTP APIs, and an OTLP/HTTP trace
sink.

Both listen on 127.0.0.1, each on an ephemeral port, and run in daemon threads of the recorder. The
provider stubs answer in the shape of the real APIs (JSON bodies and SSE streams) with usage that has
cache reads, cache writes and reasoning tokens, and record every answer's usage as a `TrueCall`: what
the provider "billed", the ground truth a fixture is checked against. Each answer and each export is
tagged with the call style that the driver announced last (`POST /_tb/style`), so the recorder can
split one driver run into one fixture per call style.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
import struct
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.loopback import serving_thread

# The model each stub answers with, by the model the request names: a fixed, dated snapshot name.
OPENAI_MODELS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "o3-mini": "o3-mini-2025-01-31",
    "text-embedding-3-small": "text-embedding-3-small",
}
ANTHROPIC_MODELS = {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}
GEMINI_MODEL_VERSION = "gemini-2.5-flash"  # the `modelVersion` of every Gemini answer

# Fixed usage shapes; a per-answer sequence number `n` is added so that every call of a run differs.
OPENAI_CACHED = 1024  # prompt_tokens_details.cached_tokens, part of prompt_tokens
OPENAI_REASONING = 192  # completion_tokens_details.reasoning_tokens of an o-series model, part of completion
ANTHROPIC_CACHE_READ = 2048
ANTHROPIC_CACHE_5M = 1024
ANTHROPIC_CACHE_1H = 512
ANTHROPIC_THINKING = 96  # usage.output_tokens_details.thinking_tokens when thinking is on
GEMINI_CACHED = 1024  # usageMetadata.cachedContentTokenCount, part of promptTokenCount
GEMINI_THOUGHTS = 64  # usageMetadata.thoughtsTokenCount: billed as output, NOT in candidatesTokenCount
BEDROCK_CACHE_READ = 2048  # usage.cacheReadInputTokens: NOT in inputTokens (Bedrock counts as Anthropic)
BEDROCK_CACHE_WRITE = 1536  # usage.cacheWriteInputTokens: NOT in inputTokens either


@dataclass
class TrueCall:
    """One answer of a provider stub: what the provider would bill. `input_tokens` includes cache tokens."""

    provider: str
    model: str
    operation: str
    stream: bool
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    response_id: str | None


@dataclass
class Recording:
    """What one recorder run saw: the answers and the OTLP export bodies, each under a call style."""

    style: str = ""
    calls: list[tuple[str, TrueCall]] = field(default_factory=list)
    exports: list[tuple[str, bytes]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def next_n(self) -> int:
        with self.lock:
            return next(self.seq)

    def add_call(self, call: TrueCall) -> None:
        with self.lock:
            self.calls.append((self.style, call))

    def calls_of(self, style: str) -> list[dict[str, Any]]:
        with self.lock:
            return [asdict(c) for s, c in self.calls if s == style]

    def exports_of(self, style: str) -> list[bytes]:
        with self.lock:
            return [body for s, body in self.exports if s == style]


def _sse(event: str | None, data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


_DSPY_ASK = "Respond with the corresponding output fields"
_DSPY_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]")


def _answer_text(req: dict[str, Any]) -> str:
    """The text of a chat answer: "Sunny, 21 °C.", or, to a prompt of DSPy's chat adapter (which asks
    for its output fields between `[[ ## name ## ]]` markers), each field it asks for so marked."""
    last = (req.get("messages") or [{}])[-1].get("content")
    if isinstance(last, list):  # content parts
        last = " ".join(str(p.get("text", "")) for p in last if isinstance(p, dict))
    if not isinstance(last, str) or _DSPY_ASK not in last:
        return "Sunny, 21 °C."
    asked = [f for f in _DSPY_FIELD.findall(last.split(_DSPY_ASK, 1)[1]) if f != "completed"]
    return "".join(f"[[ ## {f} ## ]]\nSunny, 21 °C.\n\n" for f in asked) + "[[ ## completed ## ]]"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the recorder prints its own progress
        return

    # -- plumbing ---------------------------------------------------------------------------------------

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():  # Node.js's OTLP exporter
            raw = b""
            while size := int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16):
                raw += self.rfile.read(size)
                self.rfile.readline()  # the CRLF after the chunk
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers, then the last CRLF
                pass
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return raw

    def _json(self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, chunks: list[bytes], extra: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(chunk)
            self.wfile.flush()
        self.close_connection = True

    def do_GET(self) -> None:
        self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        rec = self.server.recording
        path = self.path.split("?", 1)[0]
        raw = self._body()
        if self.server.sink != path.endswith("/v1/traces"):
            self._json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
            return
        if path == "/_tb/style":
            with rec.lock:
                rec.style = json.loads(raw or b"{}").get("style", "")
            self._json(200, {"style": rec.style})
            return
        if path.endswith("/v1/traces"):
            with rec.lock:
                rec.exports.append((rec.style, raw))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")  # an empty ExportTraceServiceResponse encodes to b""
            self.end_headers()
            return
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        with rec.lock:
            rec.requests.append((rec.style, path, req))
        route = {
            "/v1/chat/completions": self._openai_chat,
            "/v1/embeddings": self._openai_embeddings,
            "/v1/responses": self._openai_responses,
            "/v1/messages": self._anthropic_messages,
        }.get(path)
        if route is None and path.startswith(("/v1/models/", "/v1beta/models/")) and ":" in path:
            route = self._gemini_generate
        if route is None and path.startswith("/model/") and path.endswith(("/converse", "/converse-stream")):
            route = self._bedrock_converse
        if route is None:
            self._json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
            return
        route(req)

    # -- OpenAI ----------------------------------------------------------------------------------------

    def _openai_chat(self, req: dict[str, Any]) -> None:
        rec = self.server.recording
        n = rec.next_n()
        asked = str(req.get("model", ""))
        model = OPENAI_MODELS.get(asked, asked)
        reasoning = OPENAI_REASONING if asked.startswith("o") else 0
        prompt = 1500 + n
        completion = 40 + n + reasoning
        rid = f"chatcmpl-tb{n:04d}"
        created = int(time.time())
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": OPENAI_CACHED, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        tools = req.get("tools") or []
        tool_call = bool(tools) and not any(m.get("role") == "tool" for m in req.get("messages", []))
        message: dict[str, Any] = {"role": "assistant", "content": _answer_text(req), "refusal": None}
        finish = "stop"
        if tool_call:
            name = tools[0].get("function", {}).get("name", "tool")
            message = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": f"call_tb{n:04d}",
                        "type": "function",
                        "function": {"name": name, "arguments": '{"city": "Paris"}'},
                    }
                ],
            }
            finish = "tool_calls"
        stream = bool(req.get("stream"))
        rec.add_call(
            TrueCall("openai", model, "chat", stream, prompt, completion, OPENAI_CACHED, 0, reasoning, rid)
        )
        if not stream:
            self._json(
                200,
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                    "usage": usage,
                    "service_tier": "default",
                    "system_fingerprint": "fp_tb",
                },
            )
            return
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
        base["system_fingerprint"] = "fp_tb"
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse(None, {**base, "choices": [choice]})

        chunks = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        if tool_call:
            call = message["tool_calls"][0]
            chunks.append(
                chunk({"tool_calls": [{"index": 0, **call, "function": {**call["function"]}}]}, None)
            )
        else:
            text = message["content"]
            chunks += [chunk({"content": text[:7]}, None), chunk({"content": text[7:]}, None)]
        chunks.append(chunk({}, finish))
        if include_usage:
            chunks.append(_sse(None, {**base, "choices": [], "usage": usage}))
        chunks.append(_sse(None, "[DONE]"))
        self._stream(chunks)

    def _openai_embeddings(self, req: dict[str, Any]) -> None:
        rec = self.server.recording
        n = rec.next_n()
        asked = str(req.get("model", ""))
        model = OPENAI_MODELS.get(asked, asked)
        inputs = req.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1
        prompt = 8 + n
        rec.add_call(TrueCall("openai", model, "embeddings", False, prompt, 0, 0, 0, 0, None))
        vector: list[float] | str = [0.125, -0.25, 0.5]
        if req.get("encoding_format") == "base64":  # what the openai SDK asks for by default
            vector = base64.b64encode(struct.pack("<3f", 0.125, -0.25, 0.5)).decode("ascii")
        data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)]
        usage = {"prompt_tokens": prompt, "total_tokens": prompt}
        self._json(200, {"object": "list", "data": data, "model": model, "usage": usage})

    def _openai_responses(self, req: dict[str, Any]) -> None:
        rec = self.server.recording
        n = rec.next_n()
        asked = str(req.get("model", ""))
        model = OPENAI_MODELS.get(asked, asked)
        reasoning = OPENAI_REASONING if asked.startswith("o") else 0
        prompt = 1500 + n
        completion = 40 + n + reasoning
        rid = f"resp_tb{n:04d}"
        items = req.get("input")
        answered = isinstance(items, list) and any(
            isinstance(i, dict) and i.get("type") == "function_call_output" for i in items
        )
        tools = [t for t in req.get("tools") or [] if t.get("type") == "function"]
        if tools and not answered:
            output: list[dict[str, Any]] = [
                {
                    "type": "function_call",
                    "id": f"fc_tb{n:04d}",
                    "call_id": f"call_tb{n:04d}",
                    "name": tools[0]["name"],
                    "arguments": '{"city": "Paris"}',
                    "status": "completed",
                }
            ]
        else:
            output = [
                {
                    "type": "message",
                    "id": f"msg_tb{n:04d}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Sunny, 21 °C.", "annotations": []}],
                }
            ]
        rec.add_call(
            TrueCall(
                "openai", model, "responses", False, prompt, completion, OPENAI_CACHED, 0, reasoning, rid
            )
        )
        self._json(
            200,
            {
                "id": rid,
                "object": "response",
                "created_at": int(time.time()),
                "status": "completed",
                "error": None,
                "incomplete_details": None,
                "instructions": req.get("instructions"),
                "max_output_tokens": req.get("max_output_tokens"),
                "model": model,
                "output": output,
                "parallel_tool_calls": True,
                "previous_response_id": None,
                "reasoning": {"effort": None, "summary": None},
                "store": True,
                "temperature": 1.0,
                "text": {"format": {"type": "text"}},
                "tool_choice": "auto",
                "tools": req.get("tools") or [],
                "top_p": 1.0,
                "truncation": "disabled",
                "usage": {
                    "input_tokens": prompt,
                    "input_tokens_details": {"cached_tokens": OPENAI_CACHED},
                    "output_tokens": completion,
                    "output_tokens_details": {"reasoning_tokens": reasoning},
                    "total_tokens": prompt + completion,
                },
                "user": None,
                "metadata": {},
            },
        )

    # -- Anthropic -------------------------------------------------------------------------------------

    def _anthropic_messages(self, req: dict[str, Any]) -> None:
        rec = self.server.recording
        n = rec.next_n()
        asked = str(req.get("model", ""))
        model = ANTHROPIC_MODELS.get(asked, asked)
        thinking = ANTHROPIC_THINKING if (req.get("thinking") or {}).get("type") == "enabled" else 0
        uncached = 20 + n  # Anthropic's input_tokens: the part after the last cache breakpoint
        write = ANTHROPIC_CACHE_5M + ANTHROPIC_CACHE_1H
        output = 30 + n + thinking
        rid = f"msg_tb{n:04d}"
        usage: dict[str, Any] = {
            "input_tokens": uncached,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": ANTHROPIC_CACHE_READ,
            "cache_creation": {
                "ephemeral_5m_input_tokens": ANTHROPIC_CACHE_5M,
                "ephemeral_1h_input_tokens": ANTHROPIC_CACHE_1H,
            },
            "output_tokens": output,
            "service_tier": "standard",
        }
        if thinking:
            usage["output_tokens_details"] = {"thinking_tokens": thinking}
        tools = req.get("tools") or []
        answered = any(
            isinstance(m.get("content"), list)
            and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in m["content"])
            for m in req.get("messages", [])
        )
        content: list[dict[str, Any]] = []
        if thinking:
            content.append(
                {"type": "thinking", "thinking": "The user wants the weather.", "signature": "c2ln"}
            )
        stop = "end_turn"
        if tools and not answered:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_tb{n:04d}",
                    "name": tools[0]["name"],
                    "input": {"city": "Paris"},
                }
            )
            stop = "tool_use"
        else:
            content.append({"type": "text", "text": _answer_text(req)})
        stream = bool(req.get("stream"))
        rec.add_call(
            TrueCall(
                "anthropic",
                model,
                "chat",
                stream,
                uncached + write + ANTHROPIC_CACHE_READ,
                output,
                ANTHROPIC_CACHE_READ,
                write,
                thinking,
                rid,
            )
        )
        headers = {"request-id": f"req_tb{n:04d}", "anthropic-organization-id": "00000000-tb"}
        message = {
            "id": rid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not stream:
            self._json(200, message, headers)
            return
        start_usage = {**usage, "output_tokens": 1}
        start_usage.pop("output_tokens_details", None)
        chunks = [
            _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {**message, "content": [], "stop_reason": None, "usage": start_usage},
                },
            )
        ]
        for i, block in enumerate(content):
            if block["type"] == "text":
                chunks.append(
                    _sse(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": i,
                            "content_block": {"type": "text", "text": ""},
                        },
                    )
                )
                chunks.append(_sse("ping", {"type": "ping"}))
                text = block["text"]
                for piece in (text[:7], text[7:]):
                    delta = {"type": "text_delta", "text": piece}
                    chunks.append(
                        _sse(
                            "content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}
                        )
                    )
            elif block["type"] == "thinking":
                start: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
                chunks.append(
                    _sse(
                        "content_block_start",
                        {"type": "content_block_start", "index": i, "content_block": start},
                    )
                )
                for delta in (
                    {"type": "thinking_delta", "thinking": block["thinking"]},
                    {"type": "signature_delta", "signature": block["signature"]},
                ):
                    chunks.append(
                        _sse(
                            "content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}
                        )
                    )
            else:  # tool_use
                start = {**block, "input": {}}  # tool_use
                chunks.append(
                    _sse(
                        "content_block_start",
                        {"type": "content_block_start", "index": i, "content_block": start},
                    )
                )
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                chunks.append(
                    _sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta})
                )
            chunks.append(_sse("content_block_stop", {"type": "content_block_stop", "index": i}))
        # message_delta carries cumulative usage, input and cache counts included, as the current API sends.
        delta_usage = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
        chunks.append(
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": delta_usage,
                },
            )
        )
        chunks.append(_sse("message_stop", {"type": "message_stop"}))
        self._stream(chunks, headers)

    # -- Gemini (generativelanguage.googleapis.com) ------------------------------------------------------

    def _gemini_generate(self, req: dict[str, Any]) -> None:
        """``POST /v1[beta]/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``; the
        usage as Gemini reports it: the prompt count includes the cached tokens, and the thoughts are
        apart from the candidates' count though billed as output."""
        rec = self.server.recording
        n = rec.next_n()
        stream = self.path.split("?", 1)[0].endswith(":streamGenerateContent")
        prompt = 1200 + n
        candidates = 50 + n
        rid = f"tbgem{n:04d}"
        thoughts = GEMINI_THOUGHTS
        output = candidates + thoughts
        call = TrueCall(
            "google", GEMINI_MODEL_VERSION, "chat", stream, prompt, output, GEMINI_CACHED, 0, thoughts, rid
        )
        rec.add_call(call)
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates + GEMINI_THOUGHTS,
            "cachedContentTokenCount": GEMINI_CACHED,
            "thoughtsTokenCount": GEMINI_THOUGHTS,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
            "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": GEMINI_CACHED}],
        }

        def answer(text: str, last: bool, counts: dict[str, Any]) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
            if last:
                candidate["finishReason"] = "STOP"
            return {
                "candidates": [candidate],
                "usageMetadata": counts,
                "modelVersion": GEMINI_MODEL_VERSION,
                "responseId": rid,
            }

        if not stream:
            self._json(200, answer("Sunny, 21 °C.", True, usage))
            return
        first = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        chunks = [_sse(None, answer("Sunny, ", False, first)), _sse(None, answer("21 °C.", True, usage))]
        self._stream(chunks)

    # -- Bedrock runtime (Converse API) ------------------------------------------------------------------

    def _bedrock_converse(self, req: dict[str, Any]) -> None:
        """``POST /model/{modelId}/converse`` (JSON) and ``/converse-stream`` (an AWS event stream); the
        usage as Bedrock reports it: ``inputTokens`` leaves out the cache reads and writes."""
        rec = self.server.recording
        n = rec.next_n()
        path = self.path.split("?", 1)[0]
        model = urllib.parse.unquote(path.removeprefix("/model/").rsplit("/", 1)[0])
        stream = path.endswith("/converse-stream")
        uncached = 20 + n
        output = 30 + n
        cache = BEDROCK_CACHE_READ + BEDROCK_CACHE_WRITE
        read, write = BEDROCK_CACHE_READ, BEDROCK_CACHE_WRITE
        rec.add_call(TrueCall("aws", model, "chat", stream, uncached + cache, output, read, write, 0, None))
        usage = {
            "inputTokens": uncached,
            "outputTokens": output,
            "totalTokens": uncached + output + cache,
            "cacheReadInputTokens": BEDROCK_CACHE_READ,
            "cacheWriteInputTokens": BEDROCK_CACHE_WRITE,
        }
        headers = {"x-amzn-RequestId": f"tb-bedrock-{n:04d}"}
        if not stream:
            message = {"role": "assistant", "content": [{"text": "Sunny, 21 °C."}]}
            answer = {"output": {"message": message}, "stopReason": "end_turn", "usage": usage}
            self._json(200, {**answer, "metrics": {"latencyMs": 42}}, headers)
            return
        events: list[tuple[str, dict[str, Any]]] = [
            ("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Sunny, "}}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "21 °C."}}),
            ("contentBlockStop", {"contentBlockIndex": 0}),
            ("messageStop", {"stopReason": "end_turn"}),
            ("metadata", {"usage": usage, "metrics": {"latencyMs": 42}}),
        ]
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Connection", "close")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        for event, payload in events:
            self.wfile.write(_event_message(event, payload))
            self.wfile.flush()
        self.close_connection = True


def _event_message(event: str, payload: dict[str, Any]) -> bytes:
    """One message of an AWS event stream (``application/vnd.amazon.eventstream``): the prelude (total
    and header lengths, their CRC32), string headers, the JSON payload, the message's CRC32."""
    headers = b""
    fields = ((":event-type", event), (":content-type", "application/json"), (":message-type", "event"))
    for name, value in fields:
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    body = json.dumps(payload, separators=(",", ":")).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recording: Recording
    sink: bool  # the OTLP sink answers only `/v1/traces`; the provider stub everything else


def _serve(recording: Recording, sink: bool) -> tuple[_Server, threading.Thread]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.recording = recording
    server.sink = sink
    name = "tokenbook-conformance-" + ("sink" if sink else "stubs")
    thread = serving_thread(server, name)
    thread.start()
    return server, thread


def _url(server: _Server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


@dataclass
class Stubs:
    """The running provider stub (OpenAI, Anthropic and the style control) and OTLP sink, two ports."""

    providers: _Server
    sink: _Server
    threads: list[threading.Thread]

    @property
    def url(self) -> str:
        return _url(self.providers)

    @property
    def sink_url(self) -> str:
        return _url(self.sink)

    @property
    def recording(self) -> Recording:
        return self.providers.recording

    def close(self) -> None:
        for server in (self.providers, self.sink):
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)


def start() -> Stubs:
    """Starts the provider stub and the OTLP sink on 127.0.0.1, each on an ephemeral port, sharing a
    fresh `Recording`."""
    recording = Recording()
    providers, t1 = _serve(recording, sink=False)
    sink, t2 = _serve(recording, sink=True)
    return Stubs(providers, sink, [t1, t2])
