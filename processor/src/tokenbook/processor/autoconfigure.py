"""One-line setup: `configure()` in code, `TokenbookConfigurator` for ``opentelemetry-instrument``.

Both run the OTel SDK's own environment-driven setup (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_EXPORTER``,
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``_PROTOCOL`` / ``_HEADERS``, ...), with one change: the exporters'
span processors are wrapped in a single `TokenbookSpanProcessor`. ``OTEL_TRACES_EXPORTER`` defaults to
``otlp`` (as in opentelemetry-distro); with ``TOKENBOOK_METRICS=true``, ``OTEL_METRICS_EXPORTER`` too.

``pyproject.toml`` registers `TokenbookConfigurator` under the ``opentelemetry_configurator`` entry
point group, so ``opentelemetry-instrument python app.py`` sets tokenbook up with no code change. When
several configurators are installed, select it with ``OTEL_PYTHON_CONFIGURATOR=tokenbook``.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from tokenbook.processor.settings import ProcessorSettings
from tokenbook.processor.span_processor import TokenbookSpanProcessor

__all__ = ["TokenbookConfigurator", "configure"]


class _ExportProcessorFactory:
    """Builds the SDK's per-exporter processors: one `TokenbookSpanProcessor` over all exporters.

    The first exporter gets the tokenbook processor wrapping a fan-out; later exporters join the
    fan-out (and a no-op processor is returned for them), so each span is priced and charged once.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._fan_out: SynchronousMultiSpanProcessor | None = None
        self.processor: TokenbookSpanProcessor | None = None

    def __call__(self, exporter: SpanExporter) -> SpanProcessor:
        if self._fan_out is None:
            self._fan_out = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
            self._fan_out.add_span_processor(BatchSpanProcessor(exporter))
            self.processor = TokenbookSpanProcessor(self._fan_out, **self._options)
            return self.processor
        self._fan_out.add_span_processor(BatchSpanProcessor(exporter))
        return SpanProcessor()


def _set_env_defaults(options: dict[str, Any]) -> None:
    os.environ.setdefault(OTEL_TRACES_EXPORTER, "otlp")
    metrics = options.get("metrics")
    if metrics is None:
        metrics = ProcessorSettings.resolve().metrics
    if metrics:
        os.environ.setdefault(OTEL_METRICS_EXPORTER, "otlp")


class TokenbookConfigurator(_OTelSDKConfigurator):
    """The ``opentelemetry_configurator`` entry point: the SDK's setup plus `TokenbookSpanProcessor`."""

    def _configure(self, **kwargs: Any) -> None:
        options = kwargs.pop("tokenbook_options", {})
        _set_env_defaults(options)
        kwargs.setdefault("export_span_processor", _ExportProcessorFactory(options))
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]


def configure(**processor_options: Any) -> TracerProvider:
    """Set up the global TracerProvider, `TokenbookSpanProcessor` and exporter from ``OTEL_*`` vars.

    `processor_options` are `TokenbookSpanProcessor` keyword options (``price_overrides``,
    ``redaction``, ``extra_keys``, ``metrics``, ...). Returns the TracerProvider. Like the SDK's own
    setup, it is meant to run once per process: a second call cannot replace the global provider.
    Raises ValueError for a bad option, RuntimeError (naming the extra to install) when the
    configured exporter is not installed.
    """
    ProcessorSettings.resolve(
        **{k: v for k, v in processor_options.items() if k in ProcessorSettings.__slots__}
    )  # validate before touching any global state
    try:
        TokenbookConfigurator().configure(tokenbook_options=processor_options)  # type: ignore[no-untyped-call]
    except RuntimeError as exc:
        if "not found in entry point" not in str(exc) or "otlp" not in str(exc):
            raise
        raise RuntimeError(
            f"{exc}: the OTLP exporter is not installed; pip install 'tokenbook[otlp]' (the in-app "
            "processor with its exporter) or 'tokenbook[collector]' (the collector and the CLI too), "
            "or set OTEL_TRACES_EXPORTER to an installed exporter"
        ) from None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise RuntimeError(f"the global tracer provider is a {type(provider).__name__}, not the SDK's")
    return provider
