"""What kind of call a span is, and whether it is billed.

Kinds (`call_kind`), decided by the first signal present, after the names of spans that make no call
whatever they say (`semconv.NOT_CALL_SPAN_NAMES`: OpenLLMetry's ``watsonx.model_init``) and the SDKs'
span kinds from which the SDK derives a lossy operation name (`semconv.LEADING_SPAN_KINDS`: LangSmith's
``langsmith.span.kind``, whose ``prompt`` runs it names ``chat``):

1. ``gen_ai.operation.name``: `semconv.MODEL_OPERATIONS` -> ``model``, ``execute_tool`` -> ``tool``,
   ``fetch_response`` -> ``fetch`` (never billed), ``invoke_agent`` / ``invoke_workflow`` / ``plan`` /
   ``retrieval`` / memory operations / ... -> ``wrapper``;
2. ``openinference.span.kind``: LLM / EMBEDDING / RERANKER -> ``model``, TOOL -> ``tool``,
   CHAIN / AGENT / RETRIEVER / ... -> ``wrapper``;
3. other SDKs' span-kind attributes (`semconv.SDK_SPAN_KINDS`, in its order): OpenLLMetry's
   ``llm.request.type`` (chat, completion, embedding, rerank) -> ``model``, ``traceloop.span.kind`` tool
   -> ``tool``, workflow / task / agent -> ``wrapper``; Laminar's ``lmnr.span.type`` (LLM, TOOL, DEFAULT
   for an ``@observe`` function, ...); Langfuse's ``langfuse.observation.type`` (generation, tool, span,
   chain, ...); MLflow's ``mlflow.spanType`` (JSON: "TOOL", "AGENT", ...; its model types are read by
   their usage, rule 5); the AI SDK's ``ai.operationId`` ``ai.toolCall`` -> ``tool``;
4. the first word of the span name, read as an operation name (``"chat gpt-4o"``);
5. otherwise a span carrying any usage attribute is ``model``, and anything else ``other``.

Billing rule (`is_billable`), so that each token is billed once:

* a ``model`` span with usage is billed unless a descendant in the same trace carried usage (then the
  descendant, closer to the wire, records the same call: an instrumentor's span over the SDK's own);
* a ``tool`` span is never billed (a model called by a tool has its own span), nor a ``fetch`` span;
* a ``wrapper`` or ``other`` span with usage is billed only when no descendant in the same trace
  carried usage, i.e. when the framework emitted no model-call span of its own. A wrapper that
  repeats its children's summed usage is therefore never counted twice.

Children end before their parents, so by the time a parent ends, `DescendantTracker` knows whether a
descendant carried usage. The tracker is bounded (least recently marked entries are evicted) and
thread-safe; the in-app processor and the collector share it.
"""

from __future__ import annotations

import functools
import json
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Final

from tokenbook.genai import semconv
from tokenbook.genai.pricing.providers import AZURE_OPENAI, local_server, provider_of_host, unlisted_host
from tokenbook.genai.usage import USAGE_KEYS

__all__ = [
    "DEFAULT_TRACKER_SIZE",
    "KIND_FETCH",
    "KIND_MODEL",
    "KIND_OTHER",
    "KIND_TOOL",
    "KIND_WRAPPER",
    "USAGE_KEYS",
    "DescendantTracker",
    "call_kind",
    "first_text",
    "has_usage_attributes",
    "is_billable",
    "is_cache_hit",
    "span_model",
    "span_provider",
]

KIND_MODEL: Final = "model"
KIND_TOOL: Final = "tool"
KIND_WRAPPER: Final = "wrapper"
KIND_OTHER: Final = "other"
#: A span that reads back a response billed elsewhere (`semconv.NOT_BILLED_OPERATIONS`): never billed.
KIND_FETCH: Final = "fetch"
DEFAULT_TRACKER_SIZE: Final = 100_000

_KindTable = tuple[tuple[str, dict[str, str]], ...]


def _by_value(table: Mapping[str, semconv.SpanKindValues]) -> _KindTable:
    """A table of SDK span-kind attributes as attribute -> {value: kind}, in its order."""
    return tuple(
        (
            key,
            {
                **dict.fromkeys(values.model, KIND_MODEL),
                **dict.fromkeys(values.tool, KIND_TOOL),
                **dict.fromkeys(values.wrapper, KIND_WRAPPER),
            },
        )
        for key, values in table.items()
    )


def _sdk_kind(table: _KindTable, attrs: Mapping[str, object]) -> str | None:
    for key, by_value in table:
        value = attrs.get(key)
        if isinstance(value, str) and (kind := by_value.get(value)) is not None:
            return kind
    return None


_LEADING_KINDS: Final = _by_value(semconv.LEADING_SPAN_KINDS)
_SDK_KINDS: Final = _by_value(semconv.SDK_SPAN_KINDS)
_TRUE_STRINGS: Final = frozenset({"true", "1", "yes"})
_CACHE_HIT_KEYS: Final = frozenset(semconv.CACHE_HIT_FLAGS)


def has_usage_attributes(attrs: Mapping[str, object]) -> bool:
    """Whether any usage attribute (any alias) is present."""
    return not USAGE_KEYS.isdisjoint(attrs)


def _kind_of_operation(op: str) -> str | None:
    if op in semconv.MODEL_OPERATIONS:
        return KIND_MODEL
    if op in semconv.TOOL_OPERATIONS:
        return KIND_TOOL
    if op in semconv.NOT_BILLED_OPERATIONS:
        return KIND_FETCH
    if op in semconv.WRAPPER_OPERATIONS:
        return KIND_WRAPPER
    return None


def call_kind(name: str, attrs: Mapping[str, object]) -> str:
    """``"model"``, ``"tool"``, ``"wrapper"`` or ``"other"``, by the module's rule. Never raises."""
    if name in semconv.NOT_CALL_SPAN_NAMES:
        return KIND_OTHER
    if (leading := _sdk_kind(_LEADING_KINDS, attrs)) is not None:
        return leading
    op = attrs.get(semconv.OPERATION)
    if isinstance(op, str) and (kind := _kind_of_operation(op)) is not None:
        return kind
    oi_kind = attrs.get(semconv.OPENINFERENCE_SPAN_KIND)
    if isinstance(oi_kind, str):
        oi_kind = oi_kind.upper()
        if oi_kind in semconv.OPENINFERENCE_MODEL_KINDS:
            return KIND_MODEL
        if oi_kind in semconv.OPENINFERENCE_TOOL_KINDS:
            return KIND_TOOL
        if oi_kind in semconv.OPENINFERENCE_WRAPPER_KINDS:
            return KIND_WRAPPER
    if (sdk := _sdk_kind(_SDK_KINDS, attrs)) is not None:
        return sdk
    if name and (kind := _kind_of_operation(name.split(" ", 1)[0])) is not None:
        return kind
    return KIND_MODEL if has_usage_attributes(attrs) else KIND_OTHER


def is_billable(kind: str, has_usage: bool, descendant_had_usage: bool) -> bool:
    """The billing rule of this module: spans with usage and no usage below (never tool or fetch spans)."""
    if not has_usage or kind in (KIND_TOOL, KIND_FETCH):
        return False
    return not descendant_had_usage


def is_cache_hit(attrs: Mapping[str, object]) -> bool:
    """A response served from a cache without a model call.

    True when any of `semconv.CACHE_HIT_FLAGS` (``tokenbook.cache_hit``, ``gen_ai.response.cache_hit``,
    LiteLLM's ``litellm.cache_hit`` / ``cache_hit``) is ``True`` or the string ``"true"``/``"1"``/``"yes"``.
    """
    if _CACHE_HIT_KEYS.isdisjoint(attrs):  # the common case, without a lookup per flag
        return False
    for key in semconv.CACHE_HIT_FLAGS:
        value = attrs.get(key)
        if value is True or (isinstance(value, str) and value.lower() in _TRUE_STRINGS):
            return True
    return False


class DescendantTracker:
    """Bounded, thread-safe memory of spans that have a descendant carrying usage.

    Keys are ``(trace_id, span_id)`` in whatever hashable form the caller uses (ints in the SDK,
    bytes in the collector), consistently. Call `span_ended` once per span, children first.
    """

    def __init__(self, max_entries: int = DEFAULT_TRACKER_SIZE) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries!r}")
        self._max = max_entries
        self._marked: OrderedDict[tuple[Hashable, Hashable], None] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._marked)

    def span_ended(
        self, trace_id: Hashable, span_id: Hashable, parent_span_id: Hashable | None, has_usage: bool
    ) -> bool:
        """Record that a span ended; return whether one of its descendants carried usage.

        The parent is marked when this span carried usage or has such a descendant, so the mark climbs
        to every ancestor as the spans end.
        """
        own = (trace_id, span_id)
        if (parent_span_id is None or not has_usage) and own not in self._marked:
            # Nothing to forget or mark (the common case). A descendant marking `own` concurrently
            # races the same way under the lock: it is missed either way.
            return False
        with self._lock:
            had = own in self._marked
            if had:
                del self._marked[own]
            if parent_span_id is not None and (has_usage or had):
                key = (trace_id, parent_span_id)
                self._marked[key] = None
                self._marked.move_to_end(key)
                if len(self._marked) > self._max:
                    self._marked.popitem(last=False)
                    self.evicted += 1
            return had

    def has_descendant_usage(self, trace_id: Hashable, span_id: Hashable) -> bool:
        """Whether a descendant of the span is known to have carried usage (does not forget it)."""
        with self._lock:
            return (trace_id, span_id) in self._marked


def first_text(attrs: Mapping[str, object], keys: tuple[str, ...]) -> str:
    """The first present, non-empty value of `keys` in `attrs` as text ("" when none).

    Used for the provider and the model, whose keys differ by convention (`semconv.PROVIDER`,
    `semconv.MODEL`). A non-string value is turned into text; a string that is a JSON string literal
    (``"\"gpt-4o-mini\""``: MLflow writes every attribute as JSON) is read as the string it encodes.
    Pure; never raises.
    """
    get = attrs.get
    for key in keys:
        value = get(key)
        if value is not None and value != "":
            if value.__class__ is not str:
                return str(value)
            if value[0] == '"' and value[-1] == '"' and len(value) > 2:
                return _json_text(value)
            return value
    return ""


#: Provider names that the host a span called overrides (`span_provider`): the OpenAI client library's,
#: or none.
_HOST_DECIDES: Final = frozenset({"", "openai"})
#: The name a span's provider is given for a catalog provider known by its host (`span_provider`): the
#: semantic conventions' name where there is one, else the catalog's id.
_HOST_PROVIDER_NAMES: Final = {"azure": AZURE_OPENAI}


def span_provider(attrs: Mapping[str, object]) -> str:
    """The span's provider: the first present of `semconv.PROVIDER`, except that a span naming
    ``openai`` (or no provider) whose ``server.address`` is another provider's API host
    (`pricing.providers.provider_of_host`) is that provider's: an OpenAI client pointed at Azure OpenAI
    (``azure.ai.openai``), Groq, DeepSeek, Together, OpenRouter, xAI, Gemini's OpenAI-compatible
    endpoint, ..., which the OpenAI instrumentations record as ``openai``; one whose ``server.address``
    is the API host of a provider whose prices the catalog does not list (`pricing.providers.unlisted_host`:
    DeepInfra, NVIDIA's API, watsonx.ai, Hugging Face's router, ...) is that provider's, and unpriced,
    never priced from OpenAI's list by a model name both serve (``openai/gpt-oss-120b``); and one whose
    ``server.address`` and ``server.port`` are a local model server's (`pricing.providers.local_server`:
    Ollama's port 11434, vLLM's 8000 on a loopback host, ...) is that server's (``ollama``, ``vllm``):
    an OpenAI client on a local server's OpenAI-compatible API, whose calls nobody bills. Where a
    library records no ``server.address``, the host and port of its base URL (`semconv.SERVER_URL`)
    stand in, as they do where ``server.address`` is a URL, not a host (Microsoft Agent Framework 1.23
    writes its client's base URL there, ``http://localhost:11434/v1/``). Pure; never raises."""
    provider = first_text(attrs, semconv.PROVIDER)
    if provider.lower() in _HOST_DECIDES:
        host = attrs.get(semconv.SERVER_ADDRESS)
        port = attrs.get(semconv.SERVER_PORT)
        if isinstance(host, str) and "://" in host:
            host, port = _host_port(host.strip())
        elif not (isinstance(host, str) and host):
            url = attrs.get(semconv.SERVER_URL)
            host, port = _host_port(url) if isinstance(url, str) and url else ("", None)
        if host:
            if (found := provider_of_host(host)) is not None:
                return _HOST_PROVIDER_NAMES.get(found, found)
            if (unlisted := unlisted_host(host)) is not None:
                return unlisted
            if isinstance(port, int | str) and (local := local_server(host, port)) is not None:
                return local
    return provider


def span_model(attrs: Mapping[str, object]) -> str:
    """The span's model: the first present of `semconv.MODEL` (the answer's model first), except that
    an answer's model that is the request's model ID without its organisation or provider prefix
    (``gpt-oss-120b`` for ``openai/gpt-oss-120b``, ``Qwen2.5-7B-Instruct`` for
    ``Qwen/Qwen2.5-7B-Instruct``: OpenLLMetry's OpenAI instrumentation drops it) is the request's: the
    ID the server and the price lists know. Pure; never raises."""
    model = first_text(attrs, semconv.MODEL)
    request = attrs.get(semconv.REQUEST_MODEL)
    if (
        isinstance(request, str)
        and request.count("/") == 1
        and request != model
        and request.partition("/")[2] == model
        and model
    ):
        return request
    return model


@functools.lru_cache(maxsize=256)
def _host_port(url: str) -> tuple[str, int | None]:
    """The host and port of a base URL (``http://localhost:11434/v1/``: the scheme's default port when
    it names none); ``("", None)`` when it is not one."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return "", None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.hostname or "", port


def _json_text(value: str) -> str:
    """The string a JSON string literal encodes, or `value` itself when it is not one."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) and decoded else value
