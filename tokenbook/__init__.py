"""tokenbook: an exact, attributable ledger of LLM token spend on OpenTelemetry and ClickHouse.

`tokenbook.processor` runs inside applications; `tokenbook.collector` receives OTLP and writes
ClickHouse. This package holds the `tokenbook` command line.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tokenbook")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
