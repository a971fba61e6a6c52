"""Loopback stand-ins for the OpenAI, Azure OpenAI, Anthropic, Gemini, Vertex AI, Bedrock, Mistral, Groq
and Cohere HTTP APIs, for Ollama and vLLM (local servers), and an OTLP/HTTP trace sink.

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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from tests.loopback import serving_thread

# The model each stub answers with, by the model the request names: a fixed, dated snapshot name.
OPENAI_MODELS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "o3-mini": "o3-mini-2025-01-31",
    "text-embedding-3-small": "text-embedding-3-small",
}
ANTHROPIC_MODELS = {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}
# Azure OpenAI: a request names a deployment (in the URL, or as `model` on the `/openai/v1` routes); the
# answer's `model` is the model deployed under it, as Azure answers.
AZURE_DEPLOYMENTS = {
    "prod-chat": "gpt-4o-mini-2024-07-18",
    "prod-reasoning": "o3-mini-2025-01-31",
    "prod-embed": "text-embedding-3-small",
}
#: Azure's content-filter verdict on a prompt or a completion (every category "safe").
AZURE_FILTER = {
    name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual", "violence")
}
GEMINI_MODEL_VERSION = "gemini-2.5-flash"  # the `modelVersion` of every Gemini answer
#: A Vertex AI path: ``/{version}/projects/{project}/locations/{location}/publishers/{publisher}/models/
#: {model}:{method}`` (Gemini: ``google``, ``generateContent`` / ``streamGenerateContent``; Claude:
#: ``anthropic``, ``rawPredict`` / ``streamRawPredict``).
VERTEX_PATH = re.compile(
    r"/v1(?:beta1)?/projects/[^/]+/locations/[^/]+/publishers/(?P<publisher>google|anthropic)/models/"
    r"(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent|rawPredict|streamRawPredict)"
)

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
# The Anthropic model name a Claude answer of InvokeModel carries (its `model`), by Bedrock model ID.
BEDROCK_CLAUDE_NAMES = {"anthropic.claude-sonnet-4-5-20250929-v1:0": "claude-sonnet-4-5-20250929"}
MISTRAL_CACHED = 512  # usage.prompt_tokens_details.cached_tokens, part of prompt_tokens
#: Groq's models with prompt caching (the others report no prompt_tokens_details), and the reasoning
#: tokens of its reasoning models (completion_tokens_details.reasoning_tokens, part of completion_tokens)
GROQ_CACHING_MODELS = frozenset(
    {"openai/gpt-oss-120b", "openai/gpt-oss-20b", "moonshotai/kimi-k2-instruct-0905"}
)
GROQ_REASONING_MODELS = frozenset({"openai/gpt-oss-120b", "openai/gpt-oss-20b"})
GROQ_CACHED = 768
GROQ_REASONING = 80
#: Cohere bills `usage.billed_units`; `usage.tokens` counts what the model saw (its prompt template
#: too: more input, one more output token), and `cached_tokens` the part of that prompt that hit its
#: cache, which is not billed apart (an answer recorded from the API: billed 11 in / 3 out, tokens
#: 506 / 4, cached 448).
COHERE_TEMPLATE = 495
COHERE_CACHED = 448
#: Local models, which nobody bills: the Ollama stand-in's (its native API, and its OpenAI-compatible
#: ``/v1/chat/completions``, where these names tell its answers from OpenAI's) and the vLLM stand-in's
#: (OpenAI-compatible, Hugging Face model IDs). `TrueCall.provider` is the server's name.
OLLAMA_MODELS = frozenset({"llama3.1", "gpt-oss:20b", "deepseek-r1:8b", "qwen2.5:7b", "nomic-embed-text"})
VLLM_MODELS = frozenset(
    {"meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "openai/gpt-oss-20b"}
)
#: vLLM reports its prefix-cache hits (``prompt_tokens_details.cached_tokens``, inside ``prompt_tokens``)
#: when started with ``--enable-prompt-tokens-details``: the stand-in does so for these models, and
#: answers ``prompt_tokens_details: null`` for the others.
VLLM_CACHING_MODELS = frozenset({"Qwen/Qwen2.5-7B-Instruct"})
VLLM_CACHED = 256
LOCAL_PROVIDERS = frozenset({"ollama", "vllm"})

#: IBM watsonx.ai: the project the driver names, and the model IDs its stand-in serves (as watsonx.ai
#: names them: IBM's own, and other vendors' models that watsonx.ai hosts and bills at its own prices).
WATSONX_PROJECT = "tb-conformance-project"
WATSONX_MODELS = ("ibm/granite-3-3-8b-instruct", "openai/gpt-oss-120b", "meta-llama/llama-3-3-70b-instruct")

#: Replicate: ``POST /v1/models/{owner}/{name}/predictions`` (an official model, run by its name).
REPLICATE_PATH = re.compile(r"/v1/models/(?P<model>[^/]+/[^/]+)/predictions")
#: Amazon SageMaker runtime: ``POST /endpoints/{name}/invocations`` and ``invocations-response-stream``.
SAGEMAKER_PATH = re.compile(r"/endpoints/(?P<endpoint>[^/]+)/invocations(?P<stream>-response-stream)?")
#: The model a SageMaker endpoint of the stand-in serves (a Hugging Face TGI container's Messages API:
#: its answers name the model the container loaded).
SAGEMAKER_MODEL = "meta-llama/Llama-3.1-8B-Instruct"

#: Portkey: the provider each virtual key (or model-catalog slug) of the Portkey stand-in names.
PORTKEY_VIRTUAL_KEYS = {"openai-prod": "openai", "groq-prod": "groq", "openai": "openai", "groq": "groq"}


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


class _CohereCall(NamedTuple):
    """A Cohere chat call the stand-in answers (`_Handler._cohere_call`)."""

    rid: str  # the response ID
    stream: bool
    usage: dict[str, Any]  # ``billed_units`` (billed) and ``tokens`` (the prompt seen, `COHERE_TEMPLATE` too)


def _sse(event: str | None, data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


def _responses_events(answer: dict[str, Any]) -> list[bytes]:
    """The Responses API's stream of `answer` (`stream: true`): `response.created` and
    `response.in_progress` (no output, no usage yet), each output item added, its text or arguments in
    deltas, done, then `response.completed` with the whole response and its usage; every event numbered
    (`sequence_number`) and named in its `event:` line and its `type`."""
    events: list[dict[str, Any]] = []
    opening = {**answer, "status": "in_progress", "output": [], "usage": None}
    events += [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
    ]
    for index, item in enumerate(answer["output"]):
        at = {"output_index": index, "item_id": item["id"]}
        if item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": "", "annotations": []}
            events += [
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "content": []},
                },
                {"type": "response.content_part.added", **at, "content_index": 0, "part": part},
                *(
                    {
                        "type": "response.output_text.delta",
                        **at,
                        "content_index": 0,
                        "delta": piece,
                        "logprobs": [],
                    }
                    for piece in (text[:7], text[7:])
                ),
                {"type": "response.output_text.done", **at, "content_index": 0, "text": text, "logprobs": []},
                {
                    "type": "response.content_part.done",
                    **at,
                    "content_index": 0,
                    "part": {**part, "text": text},
                },
            ]
        else:  # function_call
            events += [
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "arguments": ""},
                },
                {"type": "response.function_call_arguments.delta", **at, "delta": item["arguments"]},
                {"type": "response.function_call_arguments.done", **at, "arguments": item["arguments"]},
            ]
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": answer})
    return [_sse(e["type"], {**e, "sequence_number": n}) for n, e in enumerate(events)]


_DSPY_ASK = "Respond with the corresponding output fields"
_DSPY_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]")


def _answer_text(req: dict[str, Any]) -> str:
    """The text of a chat answer: "Sunny, 21 °C.", or, to a prompt of DSPy's chat adapter (which asks
    for its output fields between `[[ ## name ## ]]` markers), each field it asks for so marked; a
    ReAct step (fields `next_tool_name`, `next_tool_args`) calls `get_weather` until the trajectory
    holds an observation, then `finish`."""
    last = (req.get("messages") or [{}])[-1].get("content")
    if isinstance(last, list):  # content parts
        last = " ".join(str(p.get("text", "")) for p in last if isinstance(p, dict))
    if not isinstance(last, str) or _DSPY_ASK not in last:
        return "Sunny, 21 °C."
    asked = [f for f in _DSPY_FIELD.findall(last.split(_DSPY_ASK, 1)[1]) if f != "completed"]
    done = "observation_0" in last
    react = {
        "next_tool_name": "finish" if done else "get_weather",
        "next_tool_args": "{}" if done else '{"city": "Paris"}',
    }
    return (
        "".join(f"[[ ## {f} ## ]]\n{react.get(f, 'Sunny, 21 °C.')}\n\n" for f in asked)
        + "[[ ## completed ## ]]"
    )


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

    def _stream(
        self,
        chunks: list[bytes],
        extra: dict[str, str] | None = None,
        content_type: str = "text/event-stream",
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
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
        path = self._path()
        if not self.server.sink and path.startswith("/v2/projects/"):
            self._watsonx_project(path.removeprefix("/v2/projects/"))
            return
        if not self.server.sink and path == "/ml/v1/foundation_model_specs":
            self._watsonx_model_specs()
            return
        self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def _path(self) -> str:
        """The request's path, also from an absolute-form target (``POST http://host/path``: a client
        that uses this stub as its HTTP proxy, so that it names the provider's own host)."""
        target = self.path
        if target.startswith(("http://", "https://")):
            target = urllib.parse.urlsplit(target).path or "/"
        return target.split("?", 1)[0]

    def _azure_host(self) -> bool:
        """Whether the request names an Azure OpenAI host (the clients of the Azure call styles name
        ``conformance.openai.azure.com`` and use this stub as their HTTP proxy)."""
        target = self.path
        host = urllib.parse.urlsplit(target).hostname if target.startswith(("http://", "https://")) else None
        host = host or self.headers.get("Host", "").rsplit(":", 1)[0]
        return (host or "").lower().endswith(".openai.azure.com")

    def do_POST(self) -> None:
        rec = self.server.recording
        path = self._path()
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
        if path == "/identity/token":  # IBM Cloud IAM: a form-encoded API key for a bearer token
            self._iam_token()
            return
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        with rec.lock:
            rec.requests.append((rec.style, path, req))
        routes: dict[str, Callable[[dict[str, Any]], None]] = {
            "/v1/chat/completions": self._openai_chat,
            "/v1/embeddings": self._openai_embeddings,
            "/v1/responses": self._openai_responses,
            "/v1/messages": self._anthropic_messages,
            # the Mistral SDK's server_url is `<stub>/mistral`: its paths are OpenAI's
            "/mistral/v1/chat/completions": self._mistral_chat,
            "/mistral/v1/embeddings": self._mistral_embeddings,
            "/openai/v1/chat/completions": self._groq_chat,
            "/v1/chat": self._cohere_chat_v1,
            "/v2/chat": self._cohere_chat,
            # the Together SDK's base URL is `<stub>/together/v1` (Together's API: api.together.xyz/v1)
            "/together/v1/chat/completions": self._together_chat,
            # the Portkey SDK's base URL is `<stub>/portkey/v1` (Portkey's gateway: api.portkey.ai/v1)
            "/portkey/v1/chat/completions": self._portkey_chat,
            "/ml/v1/text/generation": lambda r: self._watsonx_generate(r, stream=False),
            "/ml/v1/text/generation_stream": lambda r: self._watsonx_generate(r, stream=True),
            "/ml/v1/text/chat": lambda r: self._watsonx_chat(r, stream=False),
            "/ml/v1/text/chat_stream": lambda r: self._watsonx_chat(r, stream=True),
            # the Writer SDK's base URL is `<stub>/writer` (Writer's API: api.writer.com)
            "/writer/v1/chat": self._writer_chat,
            # the Aleph Alpha client's host is `<stub>/aleph-alpha/` (Aleph Alpha's API: api.aleph-alpha.com)
            "/aleph-alpha/complete": self._aleph_alpha_complete,
            "/api/chat": self._ollama_chat,
            "/api/generate": self._ollama_generate,
            "/api/embed": self._ollama_embed,
        }
        if path == "/v1/chat/completions" and req.get("model") in OLLAMA_MODELS:
            routes[path] = lambda r: self._local_chat(r, "ollama")
        elif path == "/v1/chat/completions" and req.get("model") in VLLM_MODELS:
            routes[path] = lambda r: self._local_chat(r, "vllm")
        # Azure OpenAI's paths (`/openai/...`) overlap Groq's: a request is Azure's by the host it names
        route = self._azure_route(path) if self._azure_host() else routes.get(path)
        if route is None and path.startswith(("/v1/models/", "/v1beta/models/")) and ":" in path:
            route = self._gemini_generate
        if route is None and path.startswith("/model/") and path.endswith(("/converse", "/converse-stream")):
            route = self._bedrock_converse
        if (
            route is None
            and path.startswith("/model/")
            and path.endswith(("/invoke", "/invoke-with-response-stream"))
        ):
            route = self._bedrock_invoke
        if route is None and (sagemaker := SAGEMAKER_PATH.fullmatch(path)) is not None:
            route = lambda r: self._sagemaker_invoke(r, sagemaker["endpoint"], bool(sagemaker["stream"]))  # noqa: E731
        if route is None and (replicate := REPLICATE_PATH.fullmatch(path)) is not None:
            route = lambda r: self._replicate_predict(r, replicate["model"])  # noqa: E731
        if route is None and (vertex := VERTEX_PATH.fullmatch(path)) is not None:
            route = self._vertex_gemini if vertex["publisher"] == "google" else self._vertex_anthropic
        if route is None:
            self._json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
            return
        route(req)

    # -- OpenAI ----------------------------------------------------------------------------------------

    def _openai_chat(self, req: dict[str, Any], azure_model: str | None = None) -> None:
        """OpenAI's chat completions; Azure OpenAI's when `azure_model` (the deployment's model) is
        given: the same usage, with the content-filter results Azure adds, and a stream that opens with
        a chunk of no choices and no model (the prompt's filter results)."""
        rec = self.server.recording
        n = rec.next_n()
        asked = str(req.get("model", ""))
        model = azure_model or OPENAI_MODELS.get(asked, asked)
        reasoning = OPENAI_REASONING if model.startswith("o") else 0
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
        # a tool forced by `tool_choice` is always called (Instructor's structured output, its retries too)
        forced = isinstance(req.get("tool_choice"), dict)
        answered = any(m.get("role") == "tool" for m in req.get("messages", []))
        tool_call = bool(tools) and (forced or not answered)
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
        provider = "azure" if azure_model else "openai"
        rec.add_call(
            TrueCall(provider, model, "chat", stream, prompt, completion, OPENAI_CACHED, 0, reasoning, rid)
        )
        # Azure: each choice has its completion's filter results; the prompt's come at the top level
        filtered: dict[str, Any] = {"content_filter_results": AZURE_FILTER} if azure_model else {}
        prompt_filter = [{"prompt_index": 0, "content_filter_results": AZURE_FILTER}]
        headers = {"apim-request-id": f"tb-azure-{n:04d}", "x-ms-region": "Sweden Central"}
        if not stream:
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish, **filtered}
            answer: dict[str, Any] = {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": usage,
                "system_fingerprint": "fp_tb",
            }
            if azure_model:
                answer["prompt_filter_results"] = prompt_filter
            else:
                answer["service_tier"] = "default"
            self._json(200, answer, headers if azure_model else None)
            return
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
        base["system_fingerprint"] = "fp_tb"
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            if azure_model:  # filter results on what the chunk adds; {} on the role and the finish
                choice["content_filter_results"] = AZURE_FILTER if delta.get("content") else {}
            return _sse(None, {**base, "choices": [choice]})

        chunks = []
        if azure_model:  # the prompt's filter results first: no choices, no id, no model
            opening = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
            chunks.append(_sse(None, {**opening, "prompt_filter_results": prompt_filter}))
        chunks.append(chunk({"role": "assistant", "content": "", "refusal": None}, None))
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
        self._stream(chunks, headers if azure_model else None)

    def _openai_embeddings(self, req: dict[str, Any], azure_model: str | None = None) -> None:
        """OpenAI's embeddings; Azure OpenAI's when `azure_model` (the deployment's model) is given."""
        rec = self.server.recording
        n = rec.next_n()
        asked = str(req.get("model", ""))
        model = azure_model or OPENAI_MODELS.get(asked, asked)
        inputs = req.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1
        prompt = 8 + n
        provider = "azure" if azure_model else "openai"
        rec.add_call(TrueCall(provider, model, "embeddings", False, prompt, 0, 0, 0, 0, None))
        vector: list[float] | str = [0.125, -0.25, 0.5]
        if req.get("encoding_format") == "base64":  # what the openai SDK asks for by default
            vector = base64.b64encode(struct.pack("<3f", 0.125, -0.25, 0.5)).decode("ascii")
        data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)]
        usage = {"prompt_tokens": prompt, "total_tokens": prompt}
        self._json(200, {"object": "list", "data": data, "model": model, "usage": usage})

    # -- Azure OpenAI (<resource>.openai.azure.com) -------------------------------------------------------

    def _azure_route(self, path: str) -> Callable[[dict[str, Any]], None] | None:
        """``/openai/deployments/{deployment}/chat/completions`` and ``/embeddings`` (``?api-version=``),
        and the ``/openai/v1/chat/completions`` and ``/embeddings`` routes, where the body's ``model``
        names the deployment; None for any other path."""
        parts = path.strip("/").split("/")
        operation = parts[-1] if parts[-1] == "embeddings" else "/".join(parts[-2:])
        if operation not in ("chat/completions", "embeddings"):
            return None
        if parts[1] == "deployments" and len(parts) == 3 + len(operation.split("/")):
            named: str | None = urllib.parse.unquote(parts[2])
        elif parts[1] == "v1" and len(parts) == 2 + len(operation.split("/")):
            named = None  # the body's model
        else:
            return None

        def route(req: dict[str, Any]) -> None:
            deployment = named or str(req.get("model", ""))
            model = AZURE_DEPLOYMENTS.get(deployment)
            if model is None:
                message = "The API deployment for this resource does not exist."
                self._json(404, {"error": {"code": "DeploymentNotFound", "message": message}})
            elif operation == "embeddings":
                self._openai_embeddings(req, model)
            else:
                self._openai_chat(req, model)

        return route

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
        stream = bool(req.get("stream"))
        rec.add_call(
            TrueCall(
                "openai", model, "responses", stream, prompt, completion, OPENAI_CACHED, 0, reasoning, rid
            )
        )
        answer = {
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
        }
        if stream:
            self._stream(_responses_events(answer))
        else:
            self._json(200, answer)

    # -- Anthropic -------------------------------------------------------------------------------------

    def _anthropic_messages(self, req: dict[str, Any]) -> None:
        asked = str(req.get("model", ""))
        self._anthropic_answer(req, "anthropic", ANTHROPIC_MODELS.get(asked, asked), "msg_tb")

    def _anthropic_answer(self, req: dict[str, Any], provider: str, model: str, id_prefix: str) -> None:
        """A Messages API answer (JSON, or SSE when the request says ``stream``), billed by `provider`."""
        rec = self.server.recording
        n = rec.next_n()
        thinking = ANTHROPIC_THINKING if (req.get("thinking") or {}).get("type") == "enabled" else 0
        uncached = 20 + n  # Anthropic's input_tokens: the part after the last cache breakpoint
        write = ANTHROPIC_CACHE_5M + ANTHROPIC_CACHE_1H
        output = 30 + n + thinking
        rid = f"{id_prefix}{n:04d}"
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
                provider,
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

        # a function declared and not yet answered: the model calls the first one (as the other stand-ins)
        declared = [f for t in req.get("tools") or [] for f in t.get("functionDeclarations") or []]
        answered = any(
            "functionResponse" in part for c in req.get("contents") or [] for part in c.get("parts") or []
        )
        call_part = (
            {"functionCall": {"name": declared[0]["name"], "args": {"city": "Paris"}}}
            if (declared and not answered)
            else None
        )

        def answer(text: str, last: bool, counts: dict[str, Any]) -> dict[str, Any]:
            part = call_part if call_part and last else {"text": text}
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
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

    # -- Vertex AI (aiplatform.googleapis.com) ------------------------------------------------------------

    def _vertex_gemini(self, req: dict[str, Any]) -> None:
        """``POST /v1[beta1]/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`` and
        ``:streamGenerateContent``: SSE with ``?alt=sse`` (the google-genai SDK), else a streamed JSON
        array (the Vertex AI SDK's REST transport). The usage as Vertex reports it: Gemini's counts
        (cached tokens inside ``promptTokenCount``, thoughts apart from ``candidatesTokenCount``) with
        ``trafficType`` and the counts by modality; a stream's first chunk has only ``trafficType``.
        Enums are numbers when the request asks ``$alt=json;enum-encoding=int``, as Google's REST
        clients do."""
        rec = self.server.recording
        n = rec.next_n()
        path, _, query = self.path.partition("?")
        params = urllib.parse.parse_qs(query)
        stream = path.endswith(":streamGenerateContent")
        sse = "sse" in params.get("alt", [])
        numeric = any("enum-encoding=int" in v for v in params.get("$alt", []))
        prompt = 1300 + n
        candidates = 60 + n
        rid = f"tbvtx{n:04d}"
        output = candidates + GEMINI_THOUGHTS
        rec.add_call(
            TrueCall(
                "google",
                GEMINI_MODEL_VERSION,
                "chat",
                stream,
                prompt,
                output,
                GEMINI_CACHED,
                0,
                GEMINI_THOUGHTS,
                rid,
            )
        )

        def enum(name: str, number: int) -> str | int:
            return number if numeric else name

        def modality(count: int) -> list[dict[str, Any]]:
            return [{"modality": enum("TEXT", 1), "tokenCount": count}]

        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + output,
            "cachedContentTokenCount": GEMINI_CACHED,
            "trafficType": enum("ON_DEMAND", 1),
            "promptTokensDetails": modality(prompt),
            "cacheTokensDetails": modality(GEMINI_CACHED),
            "candidatesTokensDetails": modality(candidates),
            "thoughtsTokenCount": GEMINI_THOUGHTS,
        }
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())

        def answer(text: str, last: bool, counts: dict[str, Any]) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
            if last:
                candidate["finishReason"] = enum("STOP", 1)
            return {
                "candidates": [candidate],
                "usageMetadata": counts,
                "modelVersion": GEMINI_MODEL_VERSION,
                "createTime": created,
                "responseId": rid,
            }

        if not stream:
            self._json(200, answer("Sunny, 21 °C.", True, usage))
            return
        first = {"trafficType": usage["trafficType"]}
        chunks = [answer("Sunny, ", False, first), answer("21 °C.", True, usage)]
        if sse:
            self._stream([_sse(None, c) for c in chunks])
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Connection", "close")
        self.end_headers()
        for i, c in enumerate(chunks):
            self.wfile.write((("[" if i == 0 else ",\r\n") + json.dumps(c, indent=2)).encode())
            self.wfile.flush()
        self.wfile.write(b"]")
        self.close_connection = True

    def _vertex_anthropic(self, req: dict[str, Any]) -> None:
        """``POST .../publishers/anthropic/models/{model}@{version}:rawPredict`` and ``:streamRawPredict``:
        Claude on Vertex AI, the Messages API's answer (the model in the path, not the body; IDs
        ``msg_vrtx_...``), billed by Google."""
        match = VERTEX_PATH.fullmatch(self.path.split("?", 1)[0])
        asked = match["model"] if match else ""
        model = ANTHROPIC_MODELS.get(asked.split("@", 1)[0], asked.replace("@", "-"))
        self._anthropic_answer(req, "google", model, "msg_vrtx_tb")

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

    # -- Bedrock runtime (InvokeModel: each model family's own request and answer bodies) ----------------

    def _bedrock_invoke(self, req: dict[str, Any]) -> None:
        """``POST /model/{modelId}/invoke`` (the model's own JSON answer, its counts also in the
        ``X-Amzn-Bedrock-*-Token-Count`` headers) and ``/invoke-with-response-stream`` (an AWS event
        stream of ``chunk`` events, each ``bytes`` a base64 JSON chunk of the model's own stream; the last
        one carries ``amazon-bedrock-invocationMetrics``; no count headers, sent before the counts are
        known). The model ID may be a cross-region inference profile (``us.``, ``eu.``, ``global.``) or an
        ARN of a profile or a foundation model: what is billed is the model ID it names. Three families:
        Anthropic Claude (the Messages API's body; ``input_tokens`` without the cache reads and writes),
        Amazon Nova (``inputTokens`` without them; ``cacheReadInputTokenCount``,
        ``cacheWriteInputTokenCount``) and Meta Llama (``prompt_token_count``, no prompt cache)."""
        rec = self.server.recording
        n = rec.next_n()
        path = self.path.split("?", 1)[0]
        asked = urllib.parse.unquote(path.removeprefix("/model/").rsplit("/", 1)[0])
        stream = path.endswith("/invoke-with-response-stream")
        billed = asked.rsplit("/", 1)[-1] if asked.startswith("arn:") else asked
        if "anthropic.claude" in billed:
            family = "claude"
        elif "amazon.nova" in billed:
            family = "nova"
        elif "meta.llama" in billed:
            family = "llama"
        else:
            self._json(400, {"message": f"The provided model identifier is invalid: {asked}"})
            return
        cached = family != "llama"
        uncached = (20 if cached else 1200) + n
        output = 30 + n
        read, write = (BEDROCK_CACHE_READ, BEDROCK_CACHE_WRITE) if cached else (0, 0)
        rid = f"msg_bdrk_tb{n:04d}" if family == "claude" else None
        rec.add_call(
            TrueCall("aws", billed, "chat", stream, uncached + read + write, output, read, write, 0, rid)
        )
        headers = {"x-amzn-RequestId": f"tb-bedrock-{n:04d}"}
        if not stream:
            headers["X-Amzn-Bedrock-Invocation-Latency"] = "42"
            headers["X-Amzn-Bedrock-Output-Token-Count"] = str(output)
            headers["X-Amzn-Bedrock-Input-Token-Count"] = str(uncached)  # without the cache, as in the body
            if cached:
                headers["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = str(read)
                headers["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = str(write)
        metrics = {
            "inputTokenCount": uncached,
            "outputTokenCount": output,
            "invocationLatency": 42,
            "firstByteLatency": 21,
            **({"cacheReadInputTokenCount": read, "cacheWriteInputTokenCount": write} if cached else {}),
        }
        chunks: list[dict[str, Any]]
        if family == "claude":
            # the profile's or ARN's model, without its region prefix
            model_name = next((v for k, v in BEDROCK_CLAUDE_NAMES.items() if billed.endswith(k)), billed)
            usage: dict[str, Any] = {
                "input_tokens": uncached,
                "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read,
                "cache_creation": {"ephemeral_5m_input_tokens": write, "ephemeral_1h_input_tokens": 0},
                "output_tokens": output,
            }
            message = {
                "id": rid,
                "type": "message",
                "role": "assistant",
                "model": model_name,
                "content": [{"type": "text", "text": "Sunny, 21 °C."}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
            if not stream:
                self._json(200, message, headers)
                return
            start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
            chunks = [
                {"type": "message_start", "message": start},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                *(
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
                    for t in ("Sunny, ", "21 °C.")
                ),
                {"type": "content_block_stop", "index": 0},
                # Bedrock's message_delta carries the output count alone
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": output},
                },
                {"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics},
            ]
        elif family == "nova":
            counts = {
                "inputTokens": uncached,
                "outputTokens": output,
                "cacheReadInputTokenCount": read,
                "cacheWriteInputTokenCount": write,
            }
            if not stream:
                answer: dict[str, Any] = {
                    "output": {"message": {"content": [{"text": "Sunny, 21 °C."}], "role": "assistant"}},
                    "stopReason": "end_turn",
                    # totalTokens counts the cache reads and writes too
                    "usage": {**counts, "totalTokens": uncached + output + read + write},
                }
                self._json(200, answer, headers)
                return
            chunks = [
                {"messageStart": {"role": "assistant"}},
                *(
                    {"contentBlockDelta": {"delta": {"text": t}, "contentBlockIndex": 0}}
                    for t in ("Sunny, ", "21 °C.")
                ),
                {"contentBlockStop": {"contentBlockIndex": 0}},
                {"messageStop": {"stopReason": "end_turn"}},
                {
                    "metadata": {"usage": counts, "metrics": {}, "trace": {}},
                    "amazon-bedrock-invocationMetrics": metrics,
                },
            ]
        else:  # llama
            if not stream:
                answer = {
                    "generation": "Sunny, 21 °C.",
                    "prompt_token_count": uncached,
                    "generation_token_count": output,
                    "stop_reason": "stop",
                }
                self._json(200, answer, headers)
                return
            # generation_token_count is the count so far; the prompt's count is on the first chunk only
            chunks = [
                {"generation": "Sunny, ", "prompt_token_count": uncached, "generation_token_count": 2,
                 "stop_reason": None},
                {"generation": "21 °C.", "prompt_token_count": None, "generation_token_count": 5,
                 "stop_reason": None},
                {"generation": "", "prompt_token_count": None, "generation_token_count": output,
                 "stop_reason": "stop", "amazon-bedrock-invocationMetrics": metrics},
            ]  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("X-Amzn-Bedrock-Content-Type", "application/json")
        self.send_header("Connection", "close")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        for chunk in chunks:
            raw = json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode()
            payload = {
                "bytes": base64.b64encode(raw).decode("ascii"),
                "p": "abcdefghijklmnopqrstuvwxyz"[: n % 26],
            }
            self.wfile.write(_event_message("chunk", payload))
            self.wfile.flush()
        self.close_connection = True

    # -- Mistral (api.mistral.ai) -------------------------------------------------------------------------

    def _mistral_chat(self, req: dict[str, Any]) -> None:
        """``POST /v1/chat/completions``, plain and SSE (data-only events, ``data: [DONE]`` last; the usage
        rides on the chunk with the finish reason, unasked). The answer names the model as asked
        (``mistral-small-latest``); the cached prompt tokens are inside ``prompt_tokens``."""
        rec = self.server.recording
        n = rec.next_n()
        model = str(req.get("model", ""))
        prompt = 1300 + n
        completion = 35 + n
        rid = f"cmpl-tb{n:04d}"
        created = int(time.time())
        stream = bool(req.get("stream"))
        rec.add_call(
            TrueCall("mistral", model, "chat", stream, prompt, completion, MISTRAL_CACHED, 0, 0, rid)
        )
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": MISTRAL_CACHED},
        }
        if not stream:
            message = {"role": "assistant", "content": "Sunny, 21 °C.", "tool_calls": None, "prefix": False}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            answer = {"id": rid, "object": "chat.completion", "model": model, "usage": usage}
            self._json(200, {**answer, "created": created, "choices": [choice]})
            return
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}

        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return _sse(None, {**base, "choices": [choice], **extra})

        self._stream(
            [
                chunk({"role": "assistant", "content": ""}, None),
                chunk({"content": "Sunny, "}, None),
                chunk({"content": "21 °C."}, None),
                chunk({"content": ""}, "stop", usage=usage),
                _sse(None, "[DONE]"),
            ]
        )

    def _mistral_embeddings(self, req: dict[str, Any]) -> None:
        rec = self.server.recording
        n = rec.next_n()
        model = str(req.get("model", ""))
        inputs = req.get("inputs", req.get("input"))
        count = len(inputs) if isinstance(inputs, list) else 1
        prompt = 8 + n
        rec.add_call(TrueCall("mistral", model, "embeddings", False, prompt, 0, 0, 0, 0, None))
        data = [{"object": "embedding", "embedding": [0.125, -0.25, 0.5], "index": i} for i in range(count)]
        usage = {"prompt_tokens": prompt, "completion_tokens": 0, "total_tokens": prompt}
        self._json(
            200, {"id": f"embd-tb{n:04d}", "object": "list", "data": data, "model": model, "usage": usage}
        )

    # -- Groq (api.groq.com/openai) -----------------------------------------------------------------------

    def _groq_chat(self, req: dict[str, Any]) -> None:
        """``POST /openai/v1/chat/completions``: OpenAI's shape with Groq's timings in the usage and its
        request ID in ``x_groq``. A stream carries its usage in ``x_groq.usage`` of the chunk with the
        finish reason (and, asked with ``stream_options.include_usage``, as ``usage`` in a last chunk
        without choices too). Cached prompt tokens (``prompt_tokens_details.cached_tokens``, inside
        ``prompt_tokens``) only on the models Groq caches for; reasoning tokens only on its reasoning
        models."""
        rec = self.server.recording
        n = rec.next_n()
        model = str(req.get("model", ""))
        cached = GROQ_CACHED if model in GROQ_CACHING_MODELS else 0
        reasoning = GROQ_REASONING if model in GROQ_REASONING_MODELS else 0
        prompt = 1100 + n
        completion = 25 + n + reasoning
        rid = f"chatcmpl-tb{n:04d}"
        xid = f"req_tb{n:04d}"
        created = int(time.time())
        stream = bool(req.get("stream"))
        rec.add_call(TrueCall("groq", model, "chat", stream, prompt, completion, cached, 0, reasoning, rid))
        usage: dict[str, Any] = {
            "queue_time": 0.021,
            "prompt_tokens": prompt,
            "prompt_time": 0.004,
            "completion_tokens": completion,
            "completion_time": 0.05,
            "total_tokens": prompt + completion,
            "total_time": 0.054,
        }
        if cached:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        if not stream:
            message = {"role": "assistant", "content": "Sunny, 21 °C."}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            answer = {"id": rid, "object": "chat.completion", "created": created, "model": model}
            extra = {"usage_breakdown": None, "system_fingerprint": "fp_tb", "x_groq": {"id": xid}}
            self._json(
                200, {**answer, "choices": [choice], "usage": usage, **extra, "service_tier": "on_demand"}
            )
            return
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
        base["system_fingerprint"] = "fp_tb"

        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _sse(None, {**base, "choices": [choice], **extra})

        chunks = [
            chunk({"role": "assistant", "content": ""}, None, x_groq={"id": xid}),
            chunk({"content": "Sunny, "}, None),
            chunk({"content": "21 °C."}, None),
            chunk({}, "stop", x_groq={"id": xid, "usage": usage}),
        ]
        if (req.get("stream_options") or {}).get("include_usage"):
            chunks.append(_sse(None, {**base, "choices": [], "usage": usage}))
        chunks.append(_sse(None, "[DONE]"))
        self._stream(chunks)

    # -- Cohere (api.cohere.com, v1 and v2) ---------------------------------------------------------------

    def _cohere_call(self, req: dict[str, Any]) -> _CohereCall:
        """Record one Cohere chat call (either API version) and return what its answer says of it."""
        rec = self.server.recording
        n = rec.next_n()
        billed_in, billed_out = 20 + n, 30 + n
        rid = f"00000000-0000-4000-8000-tbcohere{n:04d}"
        stream = bool(req.get("stream"))
        model = str(req.get("model", ""))
        rec.add_call(TrueCall("cohere", model, "chat", stream, billed_in, billed_out, 0, 0, 0, rid))
        usage = {
            "billed_units": {"input_tokens": billed_in, "output_tokens": billed_out},
            "tokens": {"input_tokens": billed_in + COHERE_TEMPLATE, "output_tokens": billed_out + 1},
        }
        return _CohereCall(rid, stream, usage)

    def _cohere_chat_v1(self, req: dict[str, Any]) -> None:
        """``POST /v1/chat`` (the API's first version, which cohere-ai's `CohereClient` calls), plain and
        streamed (JSON lines: ``stream-start``, ``text-generation`` events, ``stream-end`` with the whole
        answer). The usage (``meta``) bills ``billed_units``; ``tokens`` counts the prompt the model saw,
        template included (`COHERE_TEMPLATE`), which is not billed."""
        rid, stream, usage = self._cohere_call(req)
        text = "Sunny, 21 °C."
        answer = {
            "response_id": rid,
            "text": text,
            "generation_id": f"gen-{rid}",
            "chat_history": [],
            "finish_reason": "COMPLETE",
            "meta": {"api_version": {"version": "1"}, **usage},
        }
        if not stream:
            self._json(200, answer)
            return
        events = [{"is_finished": False, "event_type": "stream-start", "generation_id": f"gen-{rid}"}]
        events += [
            {"is_finished": False, "event_type": "text-generation", "text": piece}
            for piece in ("Sunny, ", "21 °C.")
        ]
        events.append(
            {"is_finished": True, "event_type": "stream-end", "finish_reason": "COMPLETE", "response": answer}
        )
        self._stream(
            [json.dumps(event).encode() + b"\n" for event in events], content_type="application/stream+json"
        )

    def _cohere_chat(self, req: dict[str, Any]) -> None:
        """``POST /v2/chat``, plain and SSE (``message-start``, ``content-start``, ``content-delta``,
        ``content-end``, ``message-end`` with the finish reason and the usage). The answer names no model.
        The usage bills ``billed_units``; ``tokens`` and ``cached_tokens`` count the whole prompt the
        model saw, template included (`COHERE_TEMPLATE`), which is not billed."""
        rid, stream, usage = self._cohere_call(req)
        usage = {**usage, "cached_tokens": COHERE_CACHED}
        text = "Sunny, 21 °C."
        if not stream:
            message = {"role": "assistant", "content": [{"type": "text", "text": text}]}
            self._json(200, {"id": rid, "message": message, "finish_reason": "COMPLETE", "usage": usage})
            return
        start = {
            "message": {
                "role": "assistant",
                "content": [],
                "tool_plan": "",
                "tool_calls": [],
                "citations": [],
            }
        }
        events: list[tuple[str, dict[str, Any]]] = [
            ("message-start", {"id": rid, "type": "message-start", "delta": start}),
            (
                "content-start",
                {
                    "type": "content-start",
                    "index": 0,
                    "delta": {"message": {"content": {"type": "text", "text": ""}}},
                },
            ),
        ]
        for piece in ("Sunny, ", "21 °C."):
            delta = {"message": {"content": {"text": piece}}}
            events.append(("content-delta", {"type": "content-delta", "index": 0, "delta": delta}))
        events.append(("content-end", {"type": "content-end", "index": 0}))
        end = {"finish_reason": "COMPLETE", "usage": usage}
        events.append(("message-end", {"type": "message-end", "delta": end}))
        self._stream([_sse(event, payload) for event, payload in events] + [_sse(None, "[DONE]")])

    # -- IBM watsonx.ai (us-south.ml.cloud.ibm.com; IAM at iam.cloud.ibm.com) ------------------------------

    def _iam_token(self) -> None:
        """``POST /identity/token`` (IBM Cloud IAM): a bearer token for the API key, a JWT whose payload
        the SDK reads for its expiry."""

        def part(payload: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()

        now = int(time.time())
        token = ".".join(
            (
                part({"kid": "20260101", "alg": "RS256"}),
                part({"iam_id": "IBMid-tbconformance", "iat": now, "exp": now + 3600}),
                "c2lnbmF0dXJl",
            )
        )
        answer = {
            "access_token": token,
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": 3600,
            "expiration": now + 3600,
            "scope": "ibm openid",
        }
        self._json(200, answer)

    def _watsonx_project(self, project: str) -> None:
        """``GET /v2/projects/{id}`` (IBM's data platform API): the project, its storage and its
        watsonx.ai Runtime instance, which the SDK reads when a client is set to a project."""
        compute = {
            "type": "machine_learning",
            "guid": "00000000-0000-4000-8000-0000000wml01",
            "name": "watsonx.ai Runtime",
            "crn": "crn:v1:bluemix:public:pm-20:us-south:a/tb::",
        }
        entity = {"name": "conformance", "storage": {"type": "bmcos_object_storage"}, "compute": [compute]}
        self._json(200, {"metadata": {"guid": project}, "entity": entity})

    def _watsonx_model_specs(self) -> None:
        """``GET /ml/v1/foundation_model_specs``: the models the stand-in serves (the SDK checks a
        model ID against them)."""
        functions = [{"id": "text_generation"}, {"id": "text_chat"}]
        models = [{"model_id": m, "label": m, "functions": functions} for m in WATSONX_MODELS]
        page = {"total_count": len(models), "limit": 200, "first": {"href": ""}}
        self._json(200, {**page, "resources": models})

    def _watsonx_generate(self, req: dict[str, Any], stream: bool) -> None:
        """``POST /ml/v1/text/generation`` (and ``generation_stream``, SSE ``id`` / ``event: message`` /
        ``data``): ``results[0]`` with ``input_token_count`` and ``generated_token_count``, no prompt
        cache. A stream counts the input in its first message only (``input_token_count`` 0 after it)
        and the output so far in each (the last message's is the answer's)."""
        rec = self.server.recording
        n = rec.next_n()
        model = str(req.get("model_id", ""))
        prompt, output = 40 + n, 12 + n
        rec.add_call(TrueCall("ibm", model, "text_completion", stream, prompt, output, 0, 0, 0, None))
        created = "2026-10-01T12:00:00.000Z"

        def answer(text: str, inputs: int, generated: int, stop: str) -> dict[str, Any]:
            result = {
                "generated_text": text,
                "generated_token_count": generated,
                "input_token_count": inputs,
                "stop_reason": stop,
            }
            return {"model_id": model, "model_version": "3.3.0", "created_at": created, "results": [result]}

        if not stream:
            self._json(200, answer("Sunny, 21 °C.", prompt, output, "eos_token"))
            return
        pieces = [("Sunny, ", prompt, 2, "not_finished"), ("21 °C.", 0, output, "eos_token")]
        chunks = [
            f"id: {i}\nevent: message\ndata: {json.dumps(answer(*piece))}\n\n".encode()
            for i, piece in enumerate(pieces, start=1)
        ]
        self._stream(chunks)

    def _watsonx_chat(self, req: dict[str, Any], stream: bool) -> None:
        """``POST /ml/v1/text/chat`` (and ``chat_stream``, SSE): OpenAI's chat shape with watsonx.ai's
        ``model_id``, ``model_version`` and ``created_at``; ``usage`` with ``prompt_tokens``,
        ``completion_tokens`` and ``total_tokens`` (no prompt cache); a stream's usage on its last
        chunk, the one with the finish reason."""
        rec = self.server.recording
        n = rec.next_n()
        model = str(req.get("model_id", ""))
        prompt, output = 60 + n, 14 + n
        rid = f"chatcmpl-tbwatsonx{n:04d}"
        rec.add_call(TrueCall("ibm", model, "chat", stream, prompt, output, 0, 0, 0, rid))
        usage = {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}
        head = {
            "id": rid,
            "model_id": model,
            "model": model,
            "created": 1790000000,
            "model_version": "3.3.0",
            "created_at": "2026-10-01T12:00:00.000Z",
        }
        if not stream:
            message = {"role": "assistant", "content": "Sunny, 21 °C."}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self._json(200, {**head, "object": "chat.completion", "choices": [choice], "usage": usage})
            return
        chunks = []
        for i, (delta, finish) in enumerate(
            (({"role": "assistant", "content": ""}, None), ({"content": "Sunny, 21 °C."}, None), ({}, "stop"))
        ):
            body = {
                **head,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **({"usage": usage} if finish else {}),
            }
            chunks.append(f"id: {i + 1}\nevent: message\ndata: {json.dumps(body)}\n\n".encode())
        self._stream(chunks)

    # -- Replicate (api.replicate.com) ----------------------------------------------------------------------

    def _replicate_predict(self, req: dict[str, Any], model: str) -> None:
        """``POST /v1/models/{owner}/{name}/predictions`` (``Prefer: wait``): the finished prediction, a
        language model's output as a list of text pieces, and Replicate's ``metrics`` with
        ``input_token_count`` and ``output_token_count`` (what a per-token model is billed by), the
        prediction's ``id`` the response ID."""
        rec = self.server.recording
        n = rec.next_n()
        prompt, output = 30 + n, 10 + n
        rid = f"tbreplicate{n:04d}"
        rec.add_call(TrueCall("replicate", model, "text_completion", False, prompt, output, 0, 0, 0, rid))
        base = f"https://api.replicate.com/v1/predictions/{rid}"
        at = "2026-10-01T12:00:00.000000Z"
        metrics = {
            "input_token_count": prompt,
            "output_token_count": output,
            "predict_time": 0.41,
            "time_to_first_token": 0.05,
            "tokens_per_second": 27.3,
            "total_time": 0.43,
        }
        prediction = {
            "id": rid,
            "model": model,
            "version": "hidden",
            "input": req.get("input", {}),
            "logs": "",
            "output": ["Sunny", ", ", "21 °C."],
            "data_removed": False,
            "error": None,
            "source": "api",
            "status": "succeeded",
            "created_at": at,
            "started_at": at,
            "completed_at": at,
            "urls": {"cancel": f"{base}/cancel", "get": base, "web": f"https://replicate.com/p/{rid}"},
            "metrics": metrics,
        }
        self._json(201, prediction)

    # -- Writer (api.writer.com) ------------------------------------------------------------------------

    def _writer_chat(self, req: dict[str, Any]) -> None:
        """``POST /v1/chat``: OpenAI's chat shape as Writer answers it (the writer-sdk's types): the model
        named as asked (``palmyra-x5``), ``usage`` with ``prompt_tokens``, ``completion_tokens``,
        ``total_tokens``, ``prompt_token_details.cached_tokens`` (0: no prompt cache) and
        ``completion_tokens_details.reasoning_tokens`` (0). A stream (data-only SSE, ``data: [DONE]``
        last) carries the usage in a last chunk of no choices when ``stream_options.include_usage`` asks.
        Writer bills at prices the catalog does not list."""
        rec = self.server.recording
        n = rec.next_n()
        model = str(req.get("model", ""))
        prompt, completion = 700 + n, 20 + n
        rid = f"tb-writer-{n:04d}"
        created = int(time.time())
        stream = bool(req.get("stream"))
        rec.add_call(TrueCall("writer", model, "chat", stream, prompt, completion, 0, 0, 0, rid))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_token_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        base = {
            "id": rid,
            "created": created,
            "model": model,
            "service_tier": None,
            "system_fingerprint": None,
        }
        if not stream:
            message = {"role": "assistant", "content": "Sunny, 21 °C.", "refusal": None, "tool_calls": None}
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            self._json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
            return

        def chunk(text: str | None, finish: str | None) -> bytes:
            choice = {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": finish}
            return _sse(None, {**base, "object": "chat.completion.chunk", "choices": [choice], "usage": None})

        chunks = [chunk("Sunny, ", None), chunk("21 °C.", None), chunk(None, "stop")]
        if (req.get("stream_options") or {}).get("include_usage"):
            last = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            chunks.append(_sse(None, last))
        self._stream([*chunks, _sse(None, "[DONE]")])

    # -- Aleph Alpha (api.aleph-alpha.com) --------------------------------------------------------------

    def _aleph_alpha_complete(self, req: dict[str, Any]) -> None:
        """``POST /complete``: Aleph Alpha's completion, ``model_version``, ``completions`` (the text and
        its finish reason) and ``num_tokens_prompt_total`` / ``num_tokens_generated`` (no prompt cache);
        no response ID, no model name but the version. Aleph Alpha bills at prices the catalog does not
        list."""
        rec = self.server.recording
        n = rec.next_n()
        model = str(req.get("model", ""))
        prompt, output = 60 + n, 12 + n
        rec.add_call(TrueCall("aleph_alpha", model, "text_completion", False, prompt, output, 0, 0, 0, None))
        completion = {"completion": " Sunny, 21 °C.", "finish_reason": "maximum_tokens"}
        answer = {
            "model_version": "2025-06-01",
            "completions": [completion],
            "num_tokens_prompt_total": prompt,
            "num_tokens_generated": output,
        }
        self._json(200, answer)

    # -- Amazon SageMaker runtime (a Hugging Face TGI container's Messages API) -----------------------------

    def _sagemaker_invoke(self, req: dict[str, Any], endpoint: str, stream: bool) -> None:
        """``POST /endpoints/{name}/invocations``: the serving container's own JSON answer, here TGI's
        Messages API (OpenAI's chat shape, ``usage`` with ``prompt_tokens`` and ``completion_tokens``);
        and ``invocations-response-stream``: an AWS event stream of ``PayloadPart`` events, each
        ``Bytes`` a piece of the container's SSE stream, the last chunk with the usage. SageMaker bills
        the endpoint's instance hours, not tokens: the true call names the endpoint, with the counts
        the container reported."""
        rec = self.server.recording
        n = rec.next_n()
        prompt, output = 25 + n, 8 + n
        rid = ""  # TGI's answers carry an empty id
        rec.add_call(TrueCall("sagemaker", endpoint, "chat", stream, prompt, output, 0, 0, 0, None))
        usage = {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}
        head = {
            "id": rid,
            "created": 1790000000,
            "model": SAGEMAKER_MODEL,
            "system_fingerprint": "3.3.6-sha-0",
        }
        invoked = {"X-Amzn-Invoked-Production-Variant": "AllTraffic"}
        if not stream:
            message = {"role": "assistant", "content": "Sunny, 21 °C."}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            answer = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            self._json(200, answer, invoked)
            return
        pieces: list[tuple[dict[str, Any], str | None]] = [
            ({"role": "assistant", "content": "Sunny, "}, None),
            ({"role": "assistant", "content": "21 °C."}, "stop"),
        ]
        chunks = []
        for delta, finish in pieces:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            body = {
                **head,
                "object": "chat.completion.chunk",
                "choices": [choice],
                "usage": usage if finish else None,
            }
            chunks.append(_sse(None, body))
        chunks.append(_sse(None, "[DONE]"))
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("X-Amzn-SageMaker-Content-Type", "text/event-stream")
        self.send_header("X-Amzn-Invoked-Production-Variant", "AllTraffic")
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(_event_message("PayloadPart", chunk, "application/octet-stream"))
            self.wfile.flush()
        self.close_connection = True

    # -- Together AI (api.together.xyz) -------------------------------------------------------------------

    def _together_chat(self, req: dict[str, Any]) -> None:
        """``POST /v1/chat/completions``: OpenAI's shape as Together answers it: the usage with a
        top-level ``cached_tokens`` (0: the models asked here have no prompt cache) and null
        ``prompt_tokens_details`` / ``completion_tokens_details``; the answer names the model as asked.
        A stream (data-only SSE, ``data: [DONE]`` last) carries each piece's ``token_id`` and ``text``,
        and its usage on the chunk with the finish reason, unasked."""
        rec = self.server.recording
        n = rec.next_n()
        model = str(req.get("model", ""))
        prompt = 1200 + n
        completion = 30 + n
        rid = f"oTb{n:04d}-together"
        created = int(time.time())
        stream = bool(req.get("stream"))
        rec.add_call(TrueCall("together", model, "chat", stream, prompt, completion, 0, 0, 0, rid))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "completion_tokens_details": None,
            "prompt_tokens_details": None,
            "cached_tokens": 0,
        }
        if not stream:
            message = {"role": "assistant", "content": "Sunny, 21 °C.", "tool_calls": []}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop", "seed": 7}
            answer = {"id": rid, "object": "chat.completion", "created": created, "model": model}
            self._json(200, {**answer, "prompt": [], "choices": [choice], "usage": usage})
            return
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}

        def chunk(text: str, token: int | None, finish: str | None, **extra: Any) -> bytes:
            delta = {"role": "assistant", "content": text, "token_id": token, "tool_calls": None}
            choice = {"index": 0, "text": text, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _sse(None, {**base, "choices": [choice], "usage": None, **extra})

        self._stream(
            [
                chunk("Sunny, ", 50, None),
                chunk("21 °C.", 51, None),
                chunk("", 128009, "stop", usage=usage),
                _sse(None, "[DONE]"),
            ]
        )

    # -- Portkey (api.portkey.ai, the AI gateway) ---------------------------------------------------------

    def _portkey_chat(self, req: dict[str, Any]) -> None:
        """``POST /v1/chat/completions`` through Portkey's gateway: the provider that answers is the one
        the request's virtual key (``x-portkey-virtual-key``) or provider header (``x-portkey-provider``)
        names (`PORTKEY_VIRTUAL_KEYS`), and the gateway forwards its answer unchanged (OpenAI's shape):
        OpenAI's answers as the OpenAI stand-in gives them, Groq's as the Groq stand-in does. A model of
        Portkey's model catalog (``@<provider slug>/<model>``) names the provider in its prefix."""
        asked = str(req.get("model", ""))
        slug = ""
        if asked.startswith("@") and "/" in asked:
            slug, asked = asked[1:].split("/", 1)
        named = (
            slug
            or self.headers.get("x-portkey-virtual-key", "")
            or self.headers.get("x-portkey-provider", "")
        )
        provider = PORTKEY_VIRTUAL_KEYS.get(named, named)
        req = {**req, "model": asked}
        if provider == "openai":
            self._openai_chat(req)
        elif provider == "groq":
            self._groq_chat(req)
        else:
            message = f"no provider for {named!r}: give a virtual key or provider"
            self._json(400, {"status": "failure", "message": message})

    # -- Ollama (a local server, 127.0.0.1:11434) ----------------------------------------------------------

    def _ndjson(self, lines: list[dict[str, Any]]) -> None:
        """A streamed answer of Ollama's native API: one JSON object per line (``application/x-ndjson``)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()
        for line in lines:
            self.wfile.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
            self.wfile.flush()
        self.close_connection = True

    def _ollama_call(self, req: dict[str, Any], operation: str, stream: bool) -> tuple[str, int, int]:
        """The next answer's model (as asked), prompt and output counts, recorded as billed by nobody: a
        local model (`LOCAL_PROVIDERS`)."""
        rec = self.server.recording
        n = rec.next_n()
        model = str(req.get("model", ""))
        prompt = 900 + n
        output = 0 if operation == "embeddings" else 20 + n
        rec.add_call(TrueCall("ollama", model, operation, stream, prompt, output, 0, 0, 0, None))
        return model, prompt, output

    @staticmethod
    def _ollama_done(prompt: int, output: int) -> dict[str, Any]:
        """The timings and counts of the last object of an Ollama answer (durations in nanoseconds):
        ``prompt_eval_count`` the prompt's tokens, ``eval_count`` the answer's (its thinking included)."""
        return {
            "done": True,
            "done_reason": "stop",
            "total_duration": 912_345_678,
            "load_duration": 12_345_678,
            "prompt_eval_count": prompt,
            "prompt_eval_duration": 300_000_000,
            "eval_count": output,
            "eval_duration": 600_000_000,
        }

    def _ollama_chat(self, req: dict[str, Any]) -> None:
        """``POST /api/chat``: one JSON answer with ``"stream": false``, else (Ollama's default) NDJSON,
        the message in pieces, the last object ``done`` with the counts. A request that declares tools
        and answers none gets a ``tool_calls`` of the first (arguments as an object); with ``think`` the
        message has a ``thinking`` part, counted in ``eval_count``."""
        stream = req.get("stream", True) is not False
        model, prompt, output = self._ollama_call(req, "chat", stream)
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        tools = req.get("tools") or []
        answered = any(m.get("role") == "tool" for m in req.get("messages") or [])
        message: dict[str, Any] = {"role": "assistant", "content": _answer_text(req)}
        if req.get("think"):
            message["thinking"] = "The user wants the weather."
        if tools and not answered:
            name = tools[0].get("function", {}).get("name", "tool")
            message["content"] = ""
            message["tool_calls"] = [{"function": {"name": name, "arguments": {"city": "Paris"}}}]
        done = self._ollama_done(prompt, output)
        if not stream:
            self._json(200, {"model": model, "created_at": created, "message": message, **done})
            return
        text = message["content"]
        pieces = [{"role": "assistant", "content": p} for p in ((text[:7], text[7:]) if text else ())]
        if "tool_calls" in message:
            pieces.append({"role": "assistant", "content": "", "tool_calls": message["tool_calls"]})
        if "thinking" in message:
            pieces.insert(0, {"role": "assistant", "content": "", "thinking": message["thinking"]})
        lines = [{"model": model, "created_at": created, "message": m, "done": False} for m in pieces]
        last = {"role": "assistant", "content": ""}
        self._ndjson([*lines, {"model": model, "created_at": created, "message": last, **done}])

    def _ollama_generate(self, req: dict[str, Any]) -> None:
        """``POST /api/generate``: a completion of ``prompt``, its text in ``response``; the last object
        also carries ``context`` (the conversation's token IDs). Streamed as NDJSON unless ``"stream":
        false``."""
        stream = req.get("stream", True) is not False
        model, prompt, output = self._ollama_call(req, "text_completion", stream)
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        done = {**self._ollama_done(prompt, output), "context": [128006, 882, 128007, 271]}
        text = "Sunny, 21 °C."
        if not stream:
            self._json(200, {"model": model, "created_at": created, "response": text, **done})
            return
        lines = [
            {"model": model, "created_at": created, "response": p, "done": False}
            for p in (text[:7], text[7:])
        ]
        self._ndjson([*lines, {"model": model, "created_at": created, "response": "", **done}])

    def _ollama_embed(self, req: dict[str, Any]) -> None:
        """``POST /api/embed``: one vector per input, the inputs' tokens in ``prompt_eval_count``."""
        model, prompt, _ = self._ollama_call(req, "embeddings", False)
        inputs = req.get("input")
        count = len(inputs) if isinstance(inputs, list) else 1
        self._json(
            200,
            {
                "model": model,
                "embeddings": [[0.125, -0.25, 0.5]] * count,
                "total_duration": 14_143_917,
                "load_duration": 1_019_500,
                "prompt_eval_count": prompt,
            },
        )

    # -- OpenAI-compatible local servers: Ollama's /v1 and vLLM's ---------------------------------------

    def _local_chat(self, req: dict[str, Any], provider: str) -> None:
        """``POST /v1/chat/completions`` of a local server, told from OpenAI's by the model asked
        (`OLLAMA_MODELS`, `VLLM_MODELS`): OpenAI's shape, the model named as asked. Ollama's answers say
        ``system_fingerprint`` ``fp_ollama`` and count no cached tokens; vLLM's carry its extra fields
        (``stop_reason``, ``prompt_logprobs``, ``kv_transfer_params``) and ``prompt_tokens_details``: null,
        or, for a model served with ``--enable-prompt-tokens-details`` (`VLLM_CACHING_MODELS`), its prefix
        cache hits in ``cached_tokens``, inside ``prompt_tokens``. A stream has its usage in a last chunk
        without choices when ``stream_options.include_usage`` asks."""
        rec = self.server.recording
        n = rec.next_n()
        model = str(req.get("model", ""))
        vllm = provider == "vllm"
        cached = VLLM_CACHED if model in VLLM_CACHING_MODELS else 0
        prompt = (1000 if vllm else 900) + n
        completion = 20 + n
        rid = f"chatcmpl-{n:032x}" if vllm else f"chatcmpl-{700 + n}"
        stream = bool(req.get("stream"))
        rec.add_call(TrueCall(provider, model, "chat", stream, prompt, completion, cached, 0, 0, rid))
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if vllm:
            usage["prompt_tokens_details"] = {"cached_tokens": cached} if cached else None
        created = int(time.time())
        base: dict[str, Any] = {"id": rid, "created": created, "model": model}
        base["system_fingerprint"] = None if vllm else "fp_ollama"
        text = _answer_text(req)
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "stop"}
            extra: dict[str, Any] = {}
            if vllm:
                message |= {"refusal": None, "annotations": None, "audio": None, "function_call": None,
                            "tool_calls": [], "reasoning_content": None}  # fmt: skip
                choice |= {"logprobs": None, "stop_reason": None}
                extra = {"service_tier": None, "prompt_logprobs": None, "kv_transfer_params": None}
            answer = {**base, "object": "chat.completion", "choices": [choice], "usage": usage, **extra}
            self._json(200, answer)
            return

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            if vllm:
                choice |= {"logprobs": None, **({"stop_reason": None} if finish else {})}
            return _sse(None, {**base, "object": "chat.completion.chunk", "choices": [choice]})

        chunks = [
            chunk({"role": "assistant", "content": ""}, None),
            chunk({"content": text[:7]}, None),
            chunk({"content": text[7:]}, None),
            chunk({"content": ""} if vllm else {"role": "assistant", "content": ""}, "stop"),
        ]
        if (req.get("stream_options") or {}).get("include_usage"):
            chunks.append(
                _sse(None, {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
            )
        chunks.append(_sse(None, "[DONE]"))
        self._stream(chunks)


def _event_message(
    event: str, payload: dict[str, Any] | bytes, content_type: str = "application/json"
) -> bytes:
    """One message of an AWS event stream (``application/vnd.amazon.eventstream``): the prelude (total
    and header lengths, their CRC32), string headers, the payload (JSON, or raw bytes: a SageMaker
    ``PayloadPart``), the message's CRC32."""
    headers = b""
    fields = ((":event-type", event), (":content-type", content_type), (":message-type", "event"))
    for name, value in fields:
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
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
