"""TLS (and mutual TLS) for the OTLP receivers and the admin API.

Config, per endpoint (``receivers.otlp.protocols.grpc.tls``, ``receivers.otlp.protocols.http.tls``,
``admin.tls``); absent means plaintext::

    tls:
      cert_file: /etc/tokenbook/server.pem     # PEM certificate chain
      key_file: /etc/tokenbook/server.key      # PEM private key
      client_ca_file: /etc/tokenbook/ca.pem    # optional: require client certificates (mTLS)

gRPC uses grpcio's own TLS (`grpc_credentials`). The HTTP servers (`tokenbook.collector.receive.server`)
run the handshake on their event loop with `server_context`, bounded by ``limits.read_timeout``, so a
client that stalls mid-handshake holds no thread. TLS 1.2 is the minimum.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenbook.genai.configspec import load, setting, type_name

if TYPE_CHECKING:
    import grpc

__all__ = ["TLSConfig", "grpc_credentials", "parse_tls", "server_context"]

_log = logging.getLogger(__name__)


@type_name("path of a PEM file")
def _pem_file(v: Any) -> Path:
    if not isinstance(v, str) or not Path(v).expanduser().is_file():
        raise ValueError(f"must be a readable file, got {v!r}")
    return Path(v).expanduser()


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """One endpoint's ``tls`` mapping."""

    cert_file: Path = setting(Path(), parse=_pem_file, required="a PEM file", doc="PEM certificate chain.")
    key_file: Path = setting(Path(), parse=_pem_file, required="a PEM file", doc="PEM private key.")
    client_ca_file: Path | None = setting(
        None,
        parse=_pem_file,
        doc="Set: clients must present a certificate signed by this CA (mutual TLS).",
    )


def parse_tls(raw: Any) -> TLSConfig | None:
    """A ``tls`` mapping from YAML (None: plaintext); raises `ValueError` naming each bad key."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError("must be a mapping with cert_file, key_file and optionally client_ca_file")
    config, problems = load(TLSConfig, raw)
    if problems:
        raise ValueError("; ".join(problems))
    return config


def grpc_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """grpcio server credentials; with `client_ca_file`, client certificates are required."""
    import grpc

    ca = tls.client_ca_file.read_bytes() if tls.client_ca_file is not None else None
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def server_context(tls: TLSConfig) -> ssl.SSLContext:
    """A server-side `ssl.SSLContext` (TLS >= 1.2; client certificates required with a client CA)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file is not None:
        context.load_verify_locations(cafile=tls.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
