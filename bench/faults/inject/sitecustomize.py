"""Storage faults for the fault-injection scripts, loaded only by their collector child processes.

`bench.faults.harness.FaultyCollector` puts this folder on ``PYTHONPATH`` and names a control file in
``TOKENBOOK_FAULT_CONTROL``; Python imports this module at start-up. It wraps `Store.write` (the one
place where the collector inserts into ClickHouse) so that, before every insert, the control file is
read:

* ``up``: the insert runs normally;
* ``down``: the insert fails with `StoreUnavailable`, as with a ClickHouse server that refuses
  connections (the embedded chDB engine runs inside the collector process and cannot be taken down
  from outside, so the outage is injected at the storage boundary instead);
* ``slow <seconds>``: every insert takes that much longer (the writer thread waits, then inserts): a
  ClickHouse that takes seconds per insert.

Nothing else of the collector is changed: receivers, write-ahead log, writer and chDB are the real ones.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

_CONTROL = os.environ.get("TOKENBOOK_FAULT_CONTROL")


def _install(control: Path) -> None:
    from tokenbook.collector.storage.store import Store, StoreUnavailable

    original = Store.write

    def write(self: Store, *args: Any, **kwargs: Any) -> Any:
        state = control.read_text(encoding="ascii").split() if control.exists() else ["up"]
        if state[:1] == ["down"]:
            raise StoreUnavailable("injected fault: storage is down")
        if state[:1] == ["slow"]:
            time.sleep(float(state[1]))
        return original(self, *args, **kwargs)

    Store.write = write  # type: ignore[method-assign]


if _CONTROL:
    _install(Path(_CONTROL))
