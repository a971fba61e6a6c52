"""tokenbook.genai: the model of a gen_ai call that the processor and the collector share.

* `semconv`: every attribute name tokenbook reads or writes, with its aliases;
* `usage`: token counts read from any convention, normalized (`read_usage`);
* `calls`: what a span is (model call, tool, wrapper) and whether it is billed;
* `attribution`: the attribution keys and the context ID rule;
* `billing`: billing statuses and money in the ledger's quantum;
* `budgets`: budget states and the usage counter;
* `redaction`: which attributes are content, and how content is dropped, hashed or kept;
* `pricing`: unit prices and their arithmetic (`rates`), the genai-prices catalog (`catalog`),
  provider names (`providers`) and local overrides (`overrides`).

Nothing here depends on the OpenTelemetry SDK or on the collector.
"""

__all__: list[str] = []
