"""Bearer-token authentication for the OTLP receivers and the admin API.

Tokens never appear in the config: each entry of ``auth.tokens`` holds the SHA-256 (hex) of a token,
the tenant it acts for and its scopes::

    auth:
      enabled: true
      tokens:
        - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
          tenant: acme            # "*": every tenant (a gateway, an operator)
          scopes: [ingest]        # ingest | query | admin

A request presents ``Authorization: Bearer <token>`` (gRPC: the ``authorization`` metadata key; OTel
exporters send it with ``OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer <token>"``).
`TokenTable.authenticate` hashes the presented token and looks the digest up, so the table holds no
usable secret. Outcomes: a `Credential`; `Unauthenticated` (no token, malformed header, unknown token
-> 401 / UNAUTHENTICATED); `PermissionDenied` (known token without the scope -> 403 /
PERMISSION_DENIED). Messages never contain the presented token.

What a credential does:

* ``ingest``: with a tenant, every span of the request is attributed to that tenant whatever its
  ``tenant.id`` attribute says (`Credential.tenant_override`); with ``*`` spans keep their own.
* ``query``: ``POST /v1/query``; with a tenant, `Store.query_readonly(..., tenant=...)` reads every
  table of the tokenbook database through ClickHouse's ``additional_table_filters``
  (`storage.tenancy.tenant_filters`):
  ``tenant_id = '<tenant>'`` for tables and views that have a ``tenant_id`` column, and ``0`` (no
  rows) for any other table. The setting is a query-level setting next to ``readonly=1``, and the
  guard (`collector.storage.guard`, on ClickHouse's own parse tree) refuses every SETTINGS clause, so no
  subquery can lift it; the engine applies it inside subqueries, CTEs, JOINs, UNIONs, ``view()`` and
  views (tests/collector/receive/test_tokens.py). The guard also refuses what the filters would not
  reach: other databases (``system.parts``, ``system.processes``...), table functions beyond a short
  list (``mergeTreeIndex`` would return every tenant's primary keys), dictionaries and Join tables.
  On a ClickHouse server, ``storage.clickhouse.tenant_reader`` adds a barrier no query text can
  lift: the query runs as that user with the tenant's role, whose row policies
  (``USING tenant_id = '<tenant>'``, `storage.row_policies`) the server enforces.
* ``admin``: everything of the admin API (query included), with the same tenant rule.

Health and readiness (``/healthz``, ``/readyz``) stay open for probes; ``/metrics`` needs ``admin``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Self

from tokenbook.collector.storage.tenancy import TENANT_PATTERN
from tokenbook.genai.configspec import Report, boolean, setting, type_name

__all__ = [
    "ALL_TENANTS",
    "SCOPES",
    "AuthConfig",
    "AuthError",
    "Credential",
    "PermissionDenied",
    "TokenTable",
    "Unauthenticated",
    "grpc_credential",
    "is_token_digest",
    "parse_tokens",
    "token_digest",
]

SCOPES: Final = ("ingest", "query", "admin")
ALL_TENANTS: Final = "*"
_DIGEST: Final = re.compile(r"[0-9a-f]{64}")


class AuthError(Exception):
    """A refused request; `status` is the HTTP status, `grpc_code` the gRPC status code name."""

    status = 401
    grpc_code = "UNAUTHENTICATED"


class Unauthenticated(AuthError):
    """No token, a malformed ``Authorization`` header, or a token that is not configured."""


class PermissionDenied(AuthError):
    """A valid token without the scope the request needs."""

    status = 403
    grpc_code = "PERMISSION_DENIED"


@dataclass(frozen=True, slots=True)
class Credential:
    """What a token may do: `tenant` (or ``*``) and its scopes."""

    tenant: str
    scopes: frozenset[str]

    @property
    def tenant_override(self) -> str | None:
        """The tenant every span of this sender is attributed to; None keeps the spans' own."""
        return None if self.tenant == ALL_TENANTS else self.tenant


def token_digest(token: str) -> str:
    """The hex SHA-256 of `token`, as written in ``auth.tokens[].sha256``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_token_digest(value: str) -> bool:
    """Whether `value` looks like `token_digest` output (64 lowercase hex digits)."""
    return bool(_DIGEST.fullmatch(value))


class TokenTable:
    """Configured credentials by token digest. Immutable; thread-safe."""

    def __init__(self, credentials: Mapping[str, Credential]) -> None:
        self._by_digest = dict(credentials)

    def __len__(self) -> int:
        return len(self._by_digest)

    def tenants(self) -> frozenset[str]:
        """The tenants that tokens are confined to (not ``*``)."""
        return frozenset(c.tenant for c in self._by_digest.values() if c.tenant_override is not None)

    def authenticate(self, authorization: str | None, scope: str) -> Credential:
        """The credential of an ``Authorization`` header value, checked for `scope`."""
        if not authorization:
            raise Unauthenticated("missing bearer token: send 'Authorization: Bearer <token>'")
        kind, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token:
            raise Unauthenticated("malformed Authorization header: expected 'Bearer <token>'")
        credential = self._by_digest.get(token_digest(token))
        if credential is None:
            raise Unauthenticated("invalid bearer token")
        if scope not in credential.scopes and not (scope == "query" and "admin" in credential.scopes):
            raise PermissionDenied(f"this token lacks the {scope!r} scope")
        return credential


def grpc_credential(tokens: TokenTable, context: Any, scope: str) -> Credential:
    """`TokenTable.authenticate` for a grpcio handler: aborts with UNAUTHENTICATED / PERMISSION_DENIED."""
    import grpc

    metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
    try:
        return tokens.authenticate(metadata.get("authorization"), scope)
    except AuthError as exc:
        context.abort(grpc.StatusCode[exc.grpc_code], str(exc))
        raise AssertionError("unreachable: context.abort raises") from exc


@type_name("list of {sha256, tenant, scopes}")
def parse_tokens(raw: Any) -> TokenTable:
    """``auth.tokens`` from YAML; raises `ValueError` listing every problem with its entry index."""
    if not isinstance(raw, list):
        raise ValueError("must be a list of {sha256, tenant, scopes} entries")
    problems: list[str] = []
    table: dict[str, Credential] = {}
    for i, entry in enumerate(raw):
        where = f"[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: must be a mapping with sha256, tenant and scopes")
            continue
        unknown = sorted(set(entry) - {"sha256", "tenant", "scopes"})
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not is_token_digest(digest.lower()):
            problems.append(f"{where}.sha256: must be 64 hex digits, the SHA-256 of the token (sha256sum)")
        elif digest.lower() in table:
            problems.append(f"{where}.sha256: the same token is configured twice")
        tenant = entry.get("tenant")
        if not isinstance(tenant, str) or not (tenant == ALL_TENANTS or TENANT_PATTERN.fullmatch(tenant)):
            problems.append(f"{where}.tenant: must be '*' or a tenant ID matching {TENANT_PATTERN.pattern}")
        scopes = entry.get("scopes", ["ingest"])
        if not isinstance(scopes, list) or not scopes or not all(s in SCOPES for s in scopes):
            problems.append(f"{where}.scopes: must be a non-empty list of {', '.join(SCOPES)}")
        if not problems and isinstance(digest, str) and isinstance(tenant, str):
            table[digest.lower()] = Credential(tenant, frozenset(scopes))
    if problems:
        raise ValueError("; ".join(problems))
    return TokenTable(table)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """The ``auth`` section: bearer tokens for the receivers and the admin API."""

    enabled: bool = setting(False, parse=boolean, doc="Require a bearer token on every request but probes.")
    tokens: TokenTable = setting(
        TokenTable({}),
        parse=parse_tokens,
        default_doc="[]",
        doc="The accepted tokens, each `{sha256: <hex SHA-256 of the token>, tenant: <tenant ID or *>, "
        "scopes: [ingest | query | admin, ...]}` (scopes default to `[ingest]`); tokens themselves "
        "never appear in the config.",
    )

    @property
    def table(self) -> TokenTable | None:
        """The tokens when authentication is on; None: no authentication."""
        return self.tokens if self.enabled else None

    def check(self, report: Report) -> Self:
        """Authentication needs at least one token."""
        if self.enabled and report.ok("tokens") and not self.tokens:
            report.problem("tokens", "at least one token is required when auth.enabled is true")
        return self
