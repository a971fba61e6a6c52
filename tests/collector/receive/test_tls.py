"""TLS and mutual TLS on both OTLP receivers, with certificates generated here (`cryptography`).

The collector process serves OTLP/gRPC and OTLP/HTTP with a server certificate for 127.0.0.1 and
requires client certificates signed by the test CA (mTLS). The official OTLP exporters connect with
the CA and a client certificate; without a client certificate, without TLS, or trusting another CA,
nothing gets through.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import CollectorProcess, SpanFactory

pytestmark = pytest.mark.e2e  # starts processes

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    directory: Path,
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    **kind: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A P-256 key and certificate (`issuer` None: a self-signed CA), written as <name>.pem/.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer[0].subject if issuer else _name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=issuer is not None, key_cert_sign=issuer is None,
                crl_sign=issuer is None, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    )  # fmt: skip
    if issuer is not None:  # what strict verifiers (OpenSSL 3 X509_STRICT, as urllib3 2 uses) demand
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    if kind.get("server"):
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if kind.get("client"):
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ca = _issue(d, "ca", None)
    _issue(d, "server", ca, server=True)
    _issue(d, "client", ca, client=True)
    _issue(d, "other-ca", None)
    return d


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory, pki: Path):
    tls = {
        "cert_file": str(pki / "server.pem"),
        "key_file": str(pki / "server.key"),
        "client_ca_file": str(pki / "ca.pem"),
    }
    c = CollectorProcess(
        tmp_path_factory.mktemp("tls") / "data",
        receivers={"otlp": {"protocols": {"grpc": {"tls": tls}, "http": {"tls": tls}}}},
    ).start()
    yield c
    assert c.stop() == 0


def _grpc_credentials(pki: Path, *, client: bool = True, ca: str = "ca") -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=(pki / f"{ca}.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes() if client else None,
        certificate_chain=(pki / "client.pem").read_bytes() if client else None,
    )


def _grpc_status(endpoint: str, credentials: grpc.ChannelCredentials | None, body: bytes) -> grpc.StatusCode:
    channel = grpc.secure_channel(endpoint, credentials) if credentials else grpc.insecure_channel(endpoint)
    with channel:
        try:
            channel.unary_unary(EXPORT)(body, timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _https_status(url: str, context: ssl.SSLContext, body: bytes) -> int | str:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as r:
            status: int = r.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError) as exc:
        return type(exc).__name__


def test_mtls_exports_through_the_official_exporters(
    collector: CollectorProcess, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets these variables override the exporter's own `certificate_file` (psf/requests#3829)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    factory = SpanFactory()
    grpc_exporter = GrpcExporter(endpoint=collector.grpc_endpoint, credentials=_grpc_credentials(pki))
    assert grpc_exporter.export(factory.chats(3, tenant="tls")) == SpanExportResult.SUCCESS
    http_exporter = HttpExporter(
        endpoint=collector.http_url.replace("http://", "https://"),
        certificate_file=str(pki / "ca.pem"),
        client_certificate_file=str(pki / "client.pem"),
        client_key_file=str(pki / "client.key"),
    )
    assert http_exporter.export(factory.chats(2, tenant="tls")) == SpanExportResult.SUCCESS
    collector.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'tls'", 5)


def test_grpc_refuses_without_a_client_certificate_or_without_tls(
    collector: CollectorProcess, pki: Path
) -> None:
    body = encode_spans(SpanFactory().chats(1, tenant="nope")).SerializeToString()
    assert _grpc_status(collector.grpc_endpoint, _grpc_credentials(pki), body) == grpc.StatusCode.OK
    assert (
        _grpc_status(collector.grpc_endpoint, _grpc_credentials(pki, client=False), body)
        != grpc.StatusCode.OK
    )
    assert (
        _grpc_status(collector.grpc_endpoint, _grpc_credentials(pki, ca="other-ca"), body)
        != grpc.StatusCode.OK
    )
    assert _grpc_status(collector.grpc_endpoint, None, body) != grpc.StatusCode.OK


def test_https_refuses_without_a_client_certificate_or_without_tls(
    collector: CollectorProcess, pki: Path
) -> None:
    body = encode_spans(SpanFactory().chats(1, tenant="nope-http")).SerializeToString()
    url = collector.http_url.replace("http://", "https://")
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    assert _https_status(url, context, body) != 200  # no client certificate
    context.load_cert_chain(pki / "client.pem", pki / "client.key")
    assert _https_status(url, context, body) == 200
    untrusting = ssl.create_default_context(cafile=str(pki / "other-ca.pem"))
    untrusting.load_cert_chain(pki / "client.pem", pki / "client.key")
    assert _https_status(url, untrusting, body) != 200  # the client does not trust the server
    assert _https_status(collector.http_url, context, body) != 200  # plaintext to a TLS port
