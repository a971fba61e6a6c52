"""Embedded (chDB) clients that share their engine's handshake.

A clickhouse-connect client runs a handshake when it is made: the engine's version and time zone,
its settings (``system.settings``, about 1,900 rows turned into Python objects) and a protocol probe
(run with a setting applied by ``SET`` and restored): three statements, 10-15 ms of CPU. chDB hosts
one engine per process and every embedded client of the process talks to it, so the answer is the
same for all of them. `connect` runs the handshake for the first client of an engine (its
connection string: the directory and the engine's options) and gives its result to the later ones,
which only open their own session and apply the client settings the handshake chose (two ``SET``
statements). The store makes one client when it opens and its pool one per concurrent reader, so
this is paid once per process instead of once per connection.

The hook is clickhouse-connect's ``Client._init_common_settings``, which runs the handshake, and
``Client._apply_init_result``, which applies its result: private methods of the pinned release
(``requirements/dev.lock``). Where a release lacks either, `connect` makes ordinary clients
(`shares_handshake` says which); `tests/collector/storage/test_embedded_client.py` checks both the
hook and that a client made from a shared handshake behaves as an ordinary one. The client class is
defined when the first client is made: importing clickhouse-connect's chDB client loads the engine's
library, which `Store.open` must not do before `engine.engine_allocator_options`.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any, Final

__all__ = ["connect", "forget_handshakes", "shares_handshake"]

#: The handshake results so far, by (connection string, the handshake's arguments, ``TZ``).
_handshakes: dict[tuple[str, str, str | None], object] = {}
_lock = threading.Lock()

_HOOKS: Final = ("_init_common_settings", "_apply_init_result")


def shares_handshake() -> bool:
    """Whether the installed clickhouse-connect has the methods `connect` hooks (else every client
    runs its own handshake)."""
    from clickhouse_connect.driver._chdbclient import ChdbClient

    return _client_class() is not ChdbClient


def forget_handshakes() -> None:
    """Drop the handshakes kept so far: the next client of each engine runs its own."""
    with _lock:
        _handshakes.clear()


@functools.cache
def _client_class() -> type[Any]:
    """The client class `connect` makes: defined on first use, because importing clickhouse-connect's
    chDB client loads the engine's library, which must come after `engine.engine_allocator_options`."""
    from clickhouse_connect.driver._chdbclient import ChdbClient

    if not all(callable(getattr(ChdbClient, name, None)) for name in _HOOKS):
        return ChdbClient

    class SharedHandshakeClient(ChdbClient):
        """A chDB client that takes its engine's handshake from an earlier client when there is one."""

        _handshake: object = None

        def _init_common_settings(self, *args: Any, **kwargs: Any) -> None:
            key = (self._backend.connection_string, repr((args, kwargs)), os.environ.get("TZ"))
            with _lock:
                known = _handshakes.get(key)
            if known is None:
                super()._init_common_settings(*args, **kwargs)
                if self._handshake is not None:
                    with _lock:
                        _handshakes.setdefault(key, self._handshake)
            else:
                self._apply_init_result(known)

        def _apply_init_result(self, result: Any) -> None:
            self._handshake = result
            super()._apply_init_result(result)

    return SharedHandshakeClient


def connect(path: str, *, chdb_options: dict[str, Any], tz_mode: str = "aware") -> Any:
    """A clickhouse-connect client of the embedded engine in directory `path` (as
    ``clickhouse_connect.get_client(dsn="chdb://" + path, ...)`` makes), its handshake shared with the
    engine's earlier clients (module docstring)."""
    return _client_class()(path=path, settings={}, tz_mode=tz_mode, chdb_options=chdb_options)
