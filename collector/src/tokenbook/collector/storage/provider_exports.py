"""Reading the providers' usage and cost exports into `ProviderRow`s, in their documented shapes.

Eight formats, recognised by their content (never by the file name):

* OpenAI Usage API, ``GET /v1/organization/usage/completions`` (and ``.../embeddings``): a page
  ``{"object": "page", "data": [bucket, ...]}``, each bucket ``{"start_time", "end_time", "results":
  [{"object": "organization.usage.completions.result", "input_tokens", "input_cached_tokens",
  "output_tokens", "num_model_requests", "model", "project_id", "api_key_id", "service_tier", ...}]}``.
  ``input_tokens`` includes the cached tokens: input = input_tokens - input_cached_tokens.
* OpenAI Costs API, ``GET /v1/organization/costs`` grouped by ``line_item``: results
  ``{"object": "organization.costs.result", "amount": {"value", "currency": "usd"}, "line_item",
  "project_id"}``; a line item reads ``"<model>, input"``, ``"<model>, cached input"`` or
  ``"<model>, output"`` (a ``"<tier> | "`` prefix or a trailing qualifier is kept in ``line_item``);
  any other line (``"web search tool calls"``) is a charge that is not tokens (token type ``other``).
* The OpenAI dashboard's exports (Usage page, Export): the activity CSV (``start_time, end_time,
  start_time_iso, end_time_iso, project_id, num_model_requests, user_id, api_key_id, model, batch,
  service_tier, input_tokens, output_tokens, input_cached_tokens, ...``, counts possibly written
  ``59200.0``) and the cost CSV (``start_time, end_time, start_time_iso, end_time_iso, amount_value,
  amount_currency, line_item, project_id, organization_id, ...``).
* Anthropic Usage & Cost Admin API, ``GET /v1/organizations/usage_report/messages``: ``{"data":
  [{"starting_at", "ending_at", "results": [{"uncached_input_tokens", "cache_creation":
  {"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"}, "cache_read_input_tokens",
  "output_tokens", "model", "workspace_id", "api_key_id", "service_tier", ...}]}], "has_more",
  "next_page"}``.
* ``GET /v1/organizations/cost_report`` grouped by ``description``: results ``{"amount", "currency",
  "cost_type", "model", "token_type", "description", "workspace_id", ...}`` where ``amount`` is a
  decimal string in the currency's lowest unit (cents: ``"123.45"`` is 1.2345 USD) and ``token_type``
  one of ``uncached_input_tokens``, ``output_tokens``, ``cache_read_input_tokens``,
  ``cache_creation.ephemeral_5m_input_tokens``, ``cache_creation.ephemeral_1h_input_tokens``.
* The Claude Console's CSV exports: usage (``usage_date_utc, model_version, api_key, workspace,
  usage_type, context_window, usage_input_tokens_no_cache, usage_input_tokens_cache_write_5m,
  usage_input_tokens_cache_write_1h, usage_input_tokens_cache_read, usage_output_tokens,
  web_search_count, ...``) and cost (``usage_date_utc, model, workspace, api_key, usage_type,
  context_window, token_type, cost_usd, list_price_usd, cost_type, ...``, token types
  ``input_no_cache``, ``input_cache_read``, ``input_cache_write_5m``, ``input_cache_write_1h``,
  ``output``; cost in dollars).

A JSON file may also hold a list of pages (every page of a paginated answer). Money is read exactly
(JSON numbers as Decimal, never float). A row that cannot be read is reported (`Export.problems`,
with its file and line or bucket) and left out; the others are kept. A file in none of these shapes
raises `ExportError`. Buckets of an hour or a minute are kept as they are; reconciliation sums them by
UTC day.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from tokenbook.collector.storage.provider_usage import ProviderRow

__all__ = ["FORMATS", "Export", "ExportError", "parse_export", "read_export"]

#: source name -> what it is
FORMATS: Final = {
    "openai.usage.completions": "OpenAI Usage API, /v1/organization/usage/completions (JSON)",
    "openai.usage.embeddings": "OpenAI Usage API, /v1/organization/usage/embeddings (JSON)",
    "openai.costs": "OpenAI Costs API, /v1/organization/costs grouped by line_item (JSON)",
    "openai.usage.csv": "OpenAI dashboard, Usage activity export (CSV)",
    "openai.costs.csv": "OpenAI dashboard, Usage cost export (CSV)",
    "anthropic.usage_report.messages": "Anthropic Admin API, /v1/organizations/usage_report/messages (JSON)",
    "anthropic.cost_report": "Anthropic Admin API, /v1/organizations/cost_report by description (JSON)",
    "anthropic.usage.csv": "Claude Console, Usage export (CSV)",
    "anthropic.cost.csv": "Claude Console, Cost export (CSV)",
}
_OPENAI_RESULT: Final = {
    "organization.usage.completions.result": "openai.usage.completions",
    "organization.usage.embeddings.result": "openai.usage.embeddings",
}
_OPENAI_PIECES: Final = {"input": "input", "cached input": "cache_read", "output": "output"}
_ANTHROPIC_TOKEN_TYPES: Final = {
    "uncached_input_tokens": "input",
    "output_tokens": "output",
    "cache_read_input_tokens": "cache_read",
    "cache_creation.ephemeral_5m_input_tokens": "cache_write",
    "cache_creation.ephemeral_1h_input_tokens": "cache_write",
}
_CONSOLE_TOKEN_TYPES: Final = {
    "input_no_cache": "input",
    "input_cache_read": "cache_read",
    "input_cache_write_5m": "cache_write",
    "input_cache_write_1h": "cache_write",
    "output": "output",
}
_HELP: Final = (
    "expected an OpenAI Usage API (completions) or Costs API JSON page, an OpenAI dashboard usage or "
    "cost CSV, an Anthropic usage_report/messages or cost_report JSON page, or a Claude Console usage "
    "or cost CSV (docs/guide/reconciliation.md)"
)
_UNGROUPED_OPENAI: Final = (
    "costs not grouped by line item: export them with group_by=line_item so that each cost names its "
    "model and token type"
)
_UNGROUPED_ANTHROPIC: Final = (
    "costs not grouped by description: export them with group_by[]=description so that each cost names "
    "its model and token type"
)


class ExportError(ValueError):
    """A file that is not a provider export tokenbook reads (the message says what was expected)."""


@dataclass
class Export:
    """What one file held: its format, the rows read, and the rows left out (with why)."""

    file: str
    source: str
    rows: list[ProviderRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def provider(self) -> str:
        """openai or anthropic."""
        return self.source.split(".", 1)[0]

    @property
    def kind(self) -> str:
        """usage (tokens) or cost (money)."""
        return "cost" if "cost" in self.source else "usage"


class _Bad(ValueError):
    """One value that cannot be read (a row is left out for it)."""


# --- values ---------------------------------------------------------------------------------------


def _count(value: Any, name: str) -> int | None:
    """A token or request count: an integer, or a number written with a zero fraction (59200.0)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _Bad(f"{name}: {value!r} is not a count")
    try:
        number = Decimal(value) if isinstance(value, int | str | Decimal) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number != number.to_integral_value() or number < 0:
        raise _Bad(f"{name}: {value!r} is not a count")
    return int(number)


def _money(value: Any, name: str) -> Decimal | None:
    """An exact amount: a decimal string, an integer, or a JSON number read as Decimal."""
    if value is None or value == "":
        return None
    if isinstance(value, bool | float):
        raise _Bad(f"{name}: {value!r} is not an exact amount")
    try:
        number = Decimal(value) if isinstance(value, int | str | Decimal) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise _Bad(f"{name}: {value!r} is not an amount")
    return number


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _unix(value: Any, name: str) -> datetime:
    seconds = _count(value, name)
    if seconds is None:
        raise _Bad(f"{name}: missing")
    return datetime.fromtimestamp(seconds, tz=UTC)


def _iso(value: Any, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise _Bad(f"{name}: {value!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _console_day(value: Any) -> tuple[datetime, datetime]:
    """The bucket of a Console ``usage_date_utc``: a whole day, or an hour or a minute when timed."""
    text = str(value or "").strip()
    start = _iso(text, "usage_date_utc")
    if len(text) == 10:
        return start, start + timedelta(days=1)
    return start, start + (timedelta(hours=1) if start.minute == 0 else timedelta(minutes=1))


def _currency(value: Any) -> str:
    code = _text(value).upper() or "USD"
    if len(code) != 3 or not code.isalpha():
        raise _Bad(f"currency: {value!r} is not an ISO 4217 code")
    return code


def _openai_line(line_item: str) -> tuple[str, str]:
    """(model, token type) of an OpenAI cost line item; ("", "other") for a line that is not tokens."""
    text = line_item.split("|", 1)[1] if "|" in line_item else line_item
    model, sep, rest = text.partition(",")
    if sep:
        piece = rest.split(",", 1)[0].strip().lower()
        token_type = _OPENAI_PIECES.get(piece)
        if token_type is not None:
            return model.strip(), token_type
    return "", "other"


# --- OpenAI ---------------------------------------------------------------------------------------


def _openai_usage(result: Mapping[str, Any], base: dict[str, Any]) -> list[ProviderRow]:
    total = _count(result.get("input_tokens"), "input_tokens") or 0
    cached = _count(result.get("input_cached_tokens"), "input_cached_tokens") or 0
    if cached > total:
        raise _Bad(f"input_cached_tokens ({cached}) above input_tokens ({total})")
    requests = _count(result.get("num_model_requests"), "num_model_requests")
    output = _count(result.get("output_tokens"), "output_tokens")
    common = {
        **base,
        "model": _text(result.get("model")),
        "project": _text(result.get("project_id")),
        "api_key": _text(result.get("api_key_id")),
        "service_tier": _text(result.get("service_tier")),
    }
    rows = [ProviderRow(**common, token_type="input", tokens=total - cached, requests=requests)]
    if base["source"] != "openai.usage.embeddings":  # embeddings have input tokens only
        rows.append(ProviderRow(**common, token_type="cache_read", tokens=cached))
        rows.append(ProviderRow(**common, token_type="output", tokens=output or 0))
    return rows


def _openai_cost(result: Mapping[str, Any], base: dict[str, Any]) -> list[ProviderRow]:
    amount = result.get("amount") or {}
    if not isinstance(amount, Mapping):
        raise _Bad("amount: not an object")
    line_item = _text(result.get("line_item"))
    if not line_item:
        raise _Bad(_UNGROUPED_OPENAI)
    model, token_type = _openai_line(line_item)
    cost = _money(amount.get("value"), "amount.value")
    if cost is None:
        return []
    return [
        ProviderRow(
            **base,
            model=model,
            token_type=token_type,
            line_item=line_item,
            project=_text(result.get("project_id")),
            api_key=_text(result.get("api_key_id")),
            cost=cost,
            currency=_currency(amount.get("currency")),
        )
    ]


# --- Anthropic ------------------------------------------------------------------------------------


def _anthropic_usage(result: Mapping[str, Any], base: dict[str, Any]) -> list[ProviderRow]:
    creation = result.get("cache_creation") or {}
    if not isinstance(creation, Mapping):
        raise _Bad("cache_creation: not an object")
    writes = sum(
        _count(creation.get(k), f"cache_creation.{k}") or 0
        for k in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")
    )
    common = {
        **base,
        "model": _text(result.get("model")),
        "project": _text(result.get("workspace_id")),
        "api_key": _text(result.get("api_key_id")),
        "service_tier": _text(result.get("service_tier")),
    }
    return [
        ProviderRow(
            **common,
            token_type="input",
            tokens=_count(result.get("uncached_input_tokens"), "uncached_input_tokens") or 0,
        ),
        ProviderRow(
            **common,
            token_type="cache_read",
            tokens=_count(result.get("cache_read_input_tokens"), "cache_read_input_tokens") or 0,
        ),
        ProviderRow(**common, token_type="cache_write", tokens=writes),
        ProviderRow(
            **common, token_type="output", tokens=_count(result.get("output_tokens"), "output_tokens") or 0
        ),
    ]


def _anthropic_cost(result: Mapping[str, Any], base: dict[str, Any]) -> list[ProviderRow]:
    cents = _money(result.get("amount"), "amount")
    if cents is None:
        return []
    cost_type = _text(result.get("cost_type"))
    token_type = _text(result.get("token_type"))
    if not cost_type and not token_type and not result.get("description"):
        raise _Bad(_UNGROUPED_ANTHROPIC)
    kind = _ANTHROPIC_TOKEN_TYPES.get(token_type, "other") if cost_type in ("tokens", "") else "other"
    if kind != "other" and not result.get("model"):
        raise _Bad(_UNGROUPED_ANTHROPIC)
    return [
        ProviderRow(
            **base,
            model=_text(result.get("model")) if kind != "other" else "",
            token_type=kind,
            line_item=_text(result.get("description")) or cost_type,
            project=_text(result.get("workspace_id")),
            service_tier=_text(result.get("service_tier")),
            cost=cents / 100,  # the lowest currency unit: cents
            currency=_currency(result.get("currency")),
        )
    ]


# --- JSON pages -----------------------------------------------------------------------------------


def _pages(doc: Any) -> list[Mapping[str, Any]]:
    pages = doc if isinstance(doc, list) else [doc]
    if not pages or not all(isinstance(p, Mapping) and isinstance(p.get("data"), list) for p in pages):
        raise ExportError(_HELP)
    return pages


def _json_source(pages: list[Mapping[str, Any]]) -> str:
    """The format of a JSON export, from its first result."""
    for page in pages:
        for bucket in page["data"]:
            if not isinstance(bucket, Mapping):
                continue
            results = bucket.get("results", bucket.get("result"))
            for result in results if isinstance(results, list) else []:
                if not isinstance(result, Mapping):
                    continue
                kind = result.get("object")
                if kind in _OPENAI_RESULT:
                    return _OPENAI_RESULT[kind]
                if kind == "organization.costs.result":
                    return "openai.costs"
                if isinstance(kind, str) and kind.startswith("organization."):
                    raise ExportError(f"OpenAI {kind!r} results are not token usage tokenbook reconciles")
                if "uncached_input_tokens" in result:
                    return "anthropic.usage_report.messages"
                if "amount" in result and (
                    "cost_type" in result or "token_type" in result or "description" in result
                ):
                    return "anthropic.cost_report"
    raise ExportError(_HELP + "; this one has no results tokenbook recognises")


def _json_rows(export: Export, pages: list[Mapping[str, Any]]) -> None:
    reader = {
        "openai.usage.completions": _openai_usage,
        "openai.usage.embeddings": _openai_usage,
        "openai.costs": _openai_cost,
        "anthropic.usage_report.messages": _anthropic_usage,
        "anthropic.cost_report": _anthropic_cost,
    }[export.source]
    openai = export.provider == "openai"
    for p, page in enumerate(pages):
        for b, bucket in enumerate(page["data"]):
            where = f"page {p + 1} bucket {b + 1}" if len(pages) > 1 else f"bucket {b + 1}"
            try:
                if not isinstance(bucket, Mapping):
                    raise _Bad("not an object")
                if openai:
                    start, end = (
                        _unix(bucket.get("start_time"), "start_time"),
                        _unix(bucket.get("end_time"), "end_time"),
                    )
                else:
                    start, end = (
                        _iso(bucket.get("starting_at"), "starting_at"),
                        _iso(bucket.get("ending_at"), "ending_at"),
                    )
                results = bucket.get("results", bucket.get("result")) or []
                if not isinstance(results, list):
                    raise _Bad("results: not a list")
            except _Bad as exc:
                export.problems.append(f"{export.file}: {where}: {exc}")
                continue
            base = {"provider": export.provider, "kind": export.kind, "source": export.source,
                    "file": export.file, "bucket_start": start, "bucket_end": end}  # fmt: skip
            for r, result in enumerate(results):
                try:
                    if not isinstance(result, Mapping):
                        raise _Bad("not an object")
                    export.rows.extend(reader(result, base))
                except _Bad as exc:
                    export.problems.append(f"{export.file}: {where} result {r + 1}: {exc}")


# --- CSV ------------------------------------------------------------------------------------------


def _csv_source(header: Iterable[str]) -> str:
    names = set(header)
    if {"usage_date_utc", "usage_input_tokens_no_cache", "usage_output_tokens"} <= names:
        return "anthropic.usage.csv"
    if {"usage_date_utc", "token_type", "cost_usd"} <= names:
        return "anthropic.cost.csv"
    if {"start_time", "amount_value", "line_item"} <= names:
        return "openai.costs.csv"
    if {"start_time", "input_tokens", "output_tokens", "num_model_requests"} <= names:
        return "openai.usage.csv"
    raise ExportError(_HELP + f"; this CSV's columns are {', '.join(sorted(names)) or 'none'}")


def _csv_row(source: str, row: Mapping[str, str], base: dict[str, Any]) -> list[ProviderRow]:
    if source == "openai.usage.csv":
        if not row.get("model") and not row.get("num_model_requests"):
            return []  # a day without usage
        start = _unix(row.get("start_time"), "start_time")
        end = _unix(row.get("end_time"), "end_time")
        return _openai_usage(row, {**base, "bucket_start": start, "bucket_end": end})
    if source == "openai.costs.csv":
        if not row.get("amount_value"):
            return []  # a day without cost
        start = _unix(row.get("start_time"), "start_time")
        end = _unix(row.get("end_time"), "end_time")
        amount = {"value": row.get("amount_value"), "currency": row.get("amount_currency")}
        return _openai_cost({**row, "amount": amount}, {**base, "bucket_start": start, "bucket_end": end})
    start, end = _console_day(row.get("usage_date_utc"))
    base = {**base, "bucket_start": start, "bucket_end": end}
    if source == "anthropic.usage.csv":
        result = {
            "uncached_input_tokens": row.get("usage_input_tokens_no_cache"),
            "cache_read_input_tokens": row.get("usage_input_tokens_cache_read"),
            "cache_creation": {
                "ephemeral_5m_input_tokens": row.get("usage_input_tokens_cache_write_5m"),
                "ephemeral_1h_input_tokens": row.get("usage_input_tokens_cache_write_1h"),
            },
            "output_tokens": row.get("usage_output_tokens"),
            "model": row.get("model_version"),
            "workspace_id": row.get("workspace"),
            "api_key_id": row.get("api_key"),
        }
        return _anthropic_usage(result, base)
    cost = _money(row.get("cost_usd"), "cost_usd")
    if cost is None:
        return []
    cost_type = (row.get("cost_type") or "token").strip()
    token_type = _CONSOLE_TOKEN_TYPES.get((row.get("token_type") or "").strip(), "other")
    kind = token_type if cost_type in ("token", "tokens") else "other"
    return [
        ProviderRow(
            **base,
            model=(row.get("model") or "").strip() if kind != "other" else "",
            token_type=kind,
            line_item=" ".join(x for x in (row.get("model"), row.get("token_type"), cost_type) if x),
            project=row.get("workspace") or "",
            api_key=row.get("api_key_id") or row.get("api_key") or "",
            cost=cost,
        )
    ]


def _csv_rows(export: Export, text: str) -> None:
    reader = csv.DictReader(io.StringIO(text))
    export.source = _csv_source(reader.fieldnames or ())
    base = {"provider": export.provider, "kind": export.kind, "source": export.source, "file": export.file}
    for row in reader:
        try:
            export.rows.extend(_csv_row(export.source, row, base))
        except _Bad as exc:
            export.problems.append(f"{export.file}: line {reader.line_num}: {exc}")


# --- entry points ---------------------------------------------------------------------------------


def parse_export(text: str, name: str) -> Export:
    """Read one export's text (`name` is its file name, kept on every row). Raises `ExportError` when
    it is none of the documented formats; rows that cannot be read are in `Export.problems`."""
    stripped = text.lstrip("\ufeff \t\r\n")
    export = Export(file=name, source="")
    if stripped.startswith(("{", "[")):
        try:
            doc = json.loads(stripped, parse_float=Decimal)
        except ValueError as exc:
            raise ExportError(f"not valid JSON ({exc}); {_HELP}") from None
        pages = _pages(doc)
        export.source = _json_source(pages)
        _json_rows(export, pages)
    else:
        _csv_rows(export, stripped)
    return export


def read_export(path: str | Path) -> Export:
    """`parse_export` of a file (UTF-8, a byte order mark allowed). Raises `ExportError` (also for a
    file that cannot be read), naming the file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"{file}: cannot read it: {exc}") from None
    try:
        return parse_export(text, file.name)
    except ExportError as exc:
        raise ExportError(f"{file}: {exc}") from None
