"""Declarative configuration: frozen dataclasses whose fields carry their default, parser and description.

A config class is a ``@dataclass(frozen=True, slots=True)`` whose fields are declared with

* `setting` — a leaf: its default, a parser (raw YAML value -> typed value; raises `ValueError` with a
  message that says how to fix it), a description and a type name for the reference;
* `section` — a nested config class (a YAML mapping);
* `items` — a list of a nested config class (a YAML list of mappings).

`load` validates raw YAML against a class and returns the instance with *every* problem, each with its
full key path (``receivers.otlp.protocols.grpc.endpoint: must be HOST:PORT ...``); unknown keys are
problems too. An absent or null key takes its default. A class may define ``check(self, report)`` for
rules that span several fields: it reports problems through `Report` (paths relative to the section)
and returns the instance, possibly completed (e.g. a default derived from another field).

`reference` lists every key (path, type, default, description) for the generated documentation, and
`Secret` wraps a value that never prints. Example::

    @dataclass(frozen=True, slots=True)
    class BatchConfig:
        max_rows: int = setting(20_000, parse=positive_int, doc="Rows per insert.")
        max_delay: float = setting(0.5, parse=duration, doc="Seconds a row may wait for a fuller batch.")

    config, problems = load(BatchConfig, {"max_rows": 0}, "storage.batch")
    # problems == ["storage.batch.max_rows: must be a positive integer, got 0"]
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, Protocol, Self, TypeVar, cast

__all__ = [
    "Invalid",
    "KeyDoc",
    "Report",
    "Secret",
    "Setting",
    "boolean",
    "duration",
    "duration_or_zero",
    "endpoint",
    "items",
    "load",
    "non_negative_int",
    "non_negative_number",
    "one_of",
    "optional_section",
    "path",
    "positive_int",
    "reference",
    "resolve",
    "section",
    "setting",
    "size",
    "size_or_zero",
    "type_name",
]

T = TypeVar("T")
C = TypeVar("C")
F = TypeVar("F", bound=Callable[..., Any])
_META: Final = "tokenbook.configspec"
_TYPE_NAMES: dict[Callable[..., Any], str] = {}


class Secret:
    """A string that never prints: ``repr`` and ``str`` show ``'***'``; `reveal` returns the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Invalid(ValueError):
    """A parser's problems below the key it parses: (``"[1]"`` or ``"colour"``, message) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{sub}: {message}" for sub, message in self.problems))


@dataclass(frozen=True, slots=True)
class Setting:
    """What a config field declares (kept in the dataclass field's metadata)."""

    kind: Literal["leaf", "section", "items"]
    doc: str
    key: str | None = None  # the YAML key when it differs from the field name
    parse: Callable[[Any], Any] | None = None  # leaves
    type_doc: str = ""  # the type as the reference shows it
    spec: type | None = None  # sections and items: the nested class; leaves: the shape documented
    required: str | None = None  # None: optional; else a hint shown after "required"
    inherit: str | None = None  # default: the value of this key in the nearest enclosing section
    default_doc: str | None = None  # the default as the reference shows it, when not the value
    env: str | None = None  # an environment variable that sets it (processor settings)
    parse_env: Callable[[str], Any] | None = None  # the variable's text -> value
    optional: bool = False  # sections: absent (None) unless the key is set


def type_name(name: str) -> Callable[[F], F]:
    """Register the type name the reference shows for fields parsed by the decorated parser."""

    def register(parser: F) -> F:
        _TYPE_NAMES[parser] = name
        return parser

    return register


def setting(
    default: T,
    *,
    parse: Callable[[Any], T],
    doc: str,
    type_doc: str | None = None,
    key: str | None = None,
    required: str | bool = False,
    inherit: str | None = None,
    default_doc: str | None = None,
    shape: type | None = None,
    env: str | None = None,
    parse_env: Callable[[str], T] | None = None,
) -> T:
    """A leaf field. `default` is also the placeholder of a `required` field (never used silently:
    a missing required key is a problem); `required` may be a hint, e.g. ``"a PEM file"``."""
    meta = Setting(
        kind="leaf",
        doc=doc,
        key=key,
        parse=parse,
        type_doc=type_doc or _TYPE_NAMES.get(parse, ""),
        spec=shape,
        required=None if required is False else "" if required is True else required,
        inherit=inherit,
        default_doc=default_doc,
        env=env,
        parse_env=parse_env,
    )
    return field(default=default, metadata={_META: meta})


def section(spec: type[C], *, doc: str, default: C | None = None, key: str | None = None) -> C:
    """A nested section; `default` replaces the class's own defaults (e.g. two endpoints' ports)."""
    value = default if default is not None else spec()
    meta = Setting(kind="section", doc=doc, key=key, spec=spec, type_doc="mapping")
    return field(default_factory=lambda: value, metadata={_META: meta})


def optional_section(spec: type[C], *, doc: str, key: str | None = None) -> C | None:
    """A nested section that is None unless the key is set (then validated as `spec`)."""
    meta = Setting(kind="section", doc=doc, key=key, spec=spec, type_doc="mapping", optional=True)
    return cast("C | None", field(default=None, metadata={_META: meta}))


def items(spec: type[C], *, doc: str, key: str | None = None) -> tuple[C, ...]:
    """A list of sections (default: empty)."""
    meta = Setting(kind="items", doc=doc, key=key, spec=spec, type_doc="list")
    return cast("tuple[C, ...]", field(default=(), metadata={_META: meta}))


def _settings(spec: type) -> Iterator[tuple[dataclasses.Field[Any], Setting]]:
    for f in dataclasses.fields(spec):
        meta = f.metadata.get(_META)
        if isinstance(meta, Setting):
            yield f, meta


def _key(f: dataclasses.Field[Any], meta: Setting) -> str:
    return meta.key or f.name


def _join(path: str, key: str) -> str:
    if not path:
        return key
    return f"{path}{key}" if key.startswith("[") else f"{path}.{key}"


class Report:
    """The problems of one section, for a class's ``check``: keys are relative to the section."""

    def __init__(
        self, path: str, raw: Mapping[str, Any], problems: list[str], start: int, present: bool
    ) -> None:
        self.path = path
        self.raw = raw
        self.present = present  # whether the section was given (False: absent or null, all defaults)
        self._problems = problems
        self._start = start  # this section's problems are problems[start:]

    def problem(self, key: str, message: str) -> None:
        """Report `message` at `key` below this section ("" for the section itself)."""
        self._problems.append(f"{_join(self.path, key) if key else self.path}: {message}")

    def given(self, dotted: str) -> bool:
        """Whether the raw section sets `dotted` (a key path below it) to a non-null value."""
        node: Any = self.raw
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or node.get(part) is None:
                return False
            node = node[part]
        return True

    def item_indices(self, key: str) -> list[int]:
        """The positions in the raw list `key` of the items that were loaded (mappings)."""
        value = self.raw.get(key)
        return [i for i, v in enumerate(value) if isinstance(v, Mapping)] if isinstance(value, list) else []

    def ok(self, key: str = "") -> bool:
        """Whether no problem was found at or below `key` of this section (all of it for "")."""
        prefix = _join(self.path, key) if key else self.path
        for p in self._problems[self._start :]:
            at = p.split(": ", 1)[0]
            if not prefix or at == prefix or at.startswith((prefix + ".", prefix + "[")):
                return False
        return True


class _Checked(Protocol):
    def check(self, report: Report) -> Self: ...


def load(spec: type[C], raw: Any, path: str = "") -> tuple[C, list[str]]:
    """Validate `raw` (parsed YAML) as `spec`: the instance (defaults where a value was bad) and every
    problem found, each ``"key.path: message"``; the config is valid when the list is empty."""
    problems: list[str] = []
    return _load(spec, raw, path, spec(), {}, problems), problems


def _load(spec: type[C], raw: Any, path: str, base: C, context: dict[str, Any], problems: list[str]) -> C:
    start, present = len(problems), raw is not None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a mapping" if path else "must be a mapping")
        raw = {}
    fields = list(_settings(spec))
    known = [_key(f, m) for f, m in fields]
    unknown: str = getattr(spec, "config_unknown_key", "unknown key (known here: {known})")
    for key in raw:
        if key not in known:
            problems.append(f"{_join(path, str(key))}: {unknown.format(known=', '.join(sorted(known)))}")
    values: dict[str, Any] = {}
    scope = dict(context)
    for f, meta in fields:  # leaves first: nested sections may inherit their values
        if meta.kind != "leaf":
            continue
        key, at = _key(f, meta), _join(path, _key(f, meta))
        default = scope.get(meta.inherit, getattr(base, f.name)) if meta.inherit else getattr(base, f.name)
        value = raw.get(key)
        values[f.name] = default
        if value is None:
            if meta.required is not None:
                problems.append(f"{at}: required" + (f" ({meta.required})" if meta.required else ""))
        else:
            assert meta.parse is not None
            try:
                values[f.name] = meta.parse(value)
            except Invalid as exc:
                problems.extend(f"{_join(at, sub)}: {message}" for sub, message in exc.problems)
            except ValueError as exc:
                problems.append(f"{at}: {exc}")
        scope[f.name] = values[f.name]
    for f, meta in fields:
        key, at = _key(f, meta), _join(path, _key(f, meta))
        if meta.kind == "section":
            assert meta.spec is not None
            if meta.optional:
                given = raw.get(key) is not None
                sub = _load(meta.spec, raw[key], at, meta.spec(), scope, problems) if given else None
                values[f.name] = sub
            else:
                values[f.name] = _load(meta.spec, raw.get(key), at, getattr(base, f.name), scope, problems)
        elif meta.kind == "items":
            assert meta.spec is not None
            values[f.name] = _load_items(meta.spec, raw.get(key), at, scope, problems)
    instance: Any = spec(**values)
    if callable(getattr(instance, "check", None)):
        instance = cast("_Checked", instance).check(Report(path, raw, problems, start, present))
    return cast("C", instance)


def _load_items(
    spec: type[C], raw: Any, path: str, context: dict[str, Any], problems: list[str]
) -> tuple[C, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(f"{path}: must be a list")
        return ()
    out: list[C] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            problems.append(f"{path}[{i}]: must be a mapping")
            continue
        out.append(_load(spec, item, f"{path}[{i}]", spec(), context, problems))
    return tuple(out)


def resolve(spec: type[C], arguments: Mapping[str, Any], environ: Mapping[str, str]) -> C:
    """Settings from keyword arguments, else environment variables, else defaults (flat `spec`).

    An argument that is None is not given; an environment variable that is empty or blank is unset.
    Raises `ValueError` listing every problem, each naming the argument or the variable.
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f, meta in _settings(spec):
        assert meta.kind == "leaf" and meta.parse is not None
        argument = arguments.get(f.name)
        text = environ.get(meta.env, "") if meta.env else ""
        try:
            if argument is not None:
                values[f.name] = meta.parse(argument)
            elif text.strip() and meta.env:
                values[f.name] = (meta.parse_env or meta.parse)(text)
        except ValueError as exc:
            problems.append(f"{f.name if argument is not None else meta.env}: {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return spec(**values)


# --- the reference ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyDoc:
    """One key of the reference: its full path, type, default (as text) and description."""

    path: str
    type: str
    default: str
    doc: str
    env: str | None = None


def reference(
    spec: type, path: str = "", base: Any = None, scope: Mapping[str, str] | None = None
) -> list[KeyDoc]:
    """Every key of `spec`, depth first, with defaults as the reference shows them."""
    base = spec() if base is None else base
    fields = list(_settings(spec))
    outer = dict(scope or {})  # leaf paths of the enclosing sections, for inherited defaults
    scope = {**outer, **{f.name: _join(path, _key(f, m)) for f, m in fields if m.kind == "leaf"}}
    out: list[KeyDoc] = []
    for f, meta in fields:
        at = _join(path, _key(f, meta))
        if meta.kind == "leaf":
            if meta.required is not None:
                default = "required"
            elif meta.default_doc is not None:
                default = meta.default_doc
            elif meta.inherit:
                default = f"`{outer.get(meta.inherit, meta.inherit)}`"
            else:
                default = show(getattr(base, f.name), meta.type_doc)
            out.append(KeyDoc(at, meta.type_doc, default, meta.doc, meta.env))
            if meta.spec is not None:
                out.extend(reference(meta.spec, at, None, scope))
        elif meta.kind == "section":
            assert meta.spec is not None
            out.append(KeyDoc(at, "mapping", "absent" if meta.optional else "", meta.doc))
            nested = None if meta.optional else getattr(base, f.name)
            out.extend(reference(meta.spec, at, nested, scope))
        else:
            assert meta.spec is not None
            out.append(KeyDoc(at, "list", "[]", meta.doc))
            out.extend(reference(meta.spec, f"{at}[]", None, scope))
    return out


def show(value: Any, kind: str = "") -> str:
    """A default value as YAML would spell it (sizes and durations with a unit)."""
    if value is None:
        return "absent"
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind in ("size", "size or 0") and isinstance(value, int) and value:
        for unit, n in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value % n == 0:
                return f"{value // n}{unit}"
        return str(value)
    if kind == "duration" and isinstance(value, int | float):
        for unit, n in (("h", 3600), ("m", 60), ("s", 1)):
            if value >= n and value % n == 0:
                return f"{value / n:g}{unit}"
        return f"{value * 1000:g}ms"
    if isinstance(value, tuple | list | frozenset):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str | Path | Decimal):
        return str(value) if str(value) else '""'
    return str(value)


# --- parsers --------------------------------------------------------------------------------------------

_SIZE_UNITS: Final = {
    **{"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3},
    **{"kib": 1024, "mib": 1024**2, "gib": 1024**3},
}
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}


def _number_with_unit(v: Any, units: Mapping[str, float], what: str) -> float:
    if isinstance(v, bool):
        raise ValueError(f"must be {what}, got {v!r}")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", v)
        if m and m.group(2).lower() in units:
            return float(m.group(1)) * units[m.group(2).lower()]
    raise ValueError(f"must be {what}, got {v!r}")


@type_name("size")
def size(v: Any) -> int:
    """Bytes (>= 1) from an integer or a string with a unit (``64KiB``, ``16MiB``, ``1GiB``, ``10MB``)."""
    n = _number_with_unit(v, _SIZE_UNITS, "a size in bytes (e.g. 1048576 or '16MiB')")
    if n < 1:
        raise ValueError(f"must be at least 1 byte, got {v!r}")
    return int(n)


@type_name("size or 0")
def size_or_zero(v: Any) -> int:
    """A size in bytes, or 0 (no limit, or the default of whatever the setting configures)."""
    return 0 if v == 0 and not isinstance(v, bool) else size(v)


@type_name("duration")
def duration(v: Any) -> float:
    """Seconds (> 0) from a number or a string with a unit (``250ms``, ``2s``, ``1m``, ``1h``)."""
    n = _number_with_unit(v, _DURATION_UNITS, "a duration (e.g. 2, '250ms', '1m')")
    if n <= 0:
        raise ValueError(f"must be positive, got {v!r}")
    return n


@type_name("integer >= 1")
def duration_or_zero(v: Any) -> float:
    """A duration, or 0 (no bound)."""
    if v == 0 and not isinstance(v, bool):
        return 0.0
    return duration(v)


def positive_int(v: Any) -> int:
    """An int >= 1 (not a bool)."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"must be a positive integer, got {v!r}")
    return v


@type_name("integer >= 0")
def non_negative_int(v: Any) -> int:
    """An int >= 0 (not a bool)."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"must be an integer >= 0, got {v!r}")
    return v


@type_name("number >= 0")
def non_negative_number(v: Any) -> float:
    """A number >= 0 (not a bool)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ValueError(f"must be a number >= 0, got {v!r}")
    return float(v)


@type_name("boolean")
def boolean(v: Any) -> bool:
    """true or false (YAML booleans only)."""
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {v!r}")
    return v


@type_name("path")
def path(v: Any) -> Path:
    """A non-empty path; ``~`` expands to the home directory."""
    if not isinstance(v, str) or not v:
        raise ValueError("must be a path")
    return Path(v).expanduser()


@type_name("HOST:PORT")
def endpoint(v: Any) -> str:
    """A listening address ``HOST:PORT`` with a port in 1..65535."""
    if not isinstance(v, str):
        raise ValueError("must be HOST:PORT")
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be HOST:PORT with a port in 1..65535, got {v!r}")
    return v


def int_in(low: int, high: int) -> Callable[[Any], int]:
    """A parser accepting an int from `low` to `high`, both included (not a bool)."""

    def parse(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise ValueError(f"must be an integer from {low} to {high}, got {v!r}")
        return v

    _TYPE_NAMES[parse] = f"integer {low}..{high}"
    return parse


def one_of(choices: Sequence[str], *, lower: bool = False) -> Callable[[Any], str]:
    """A parser accepting one of `choices` (case-insensitively, lower-cased, with `lower`)."""

    def parse(v: Any) -> str:
        value = v.lower() if lower and isinstance(v, str) else v
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {v!r}")
        return value

    _TYPE_NAMES[parse] = " | ".join(choices)
    return parse
