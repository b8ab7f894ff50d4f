"""Database connection tuning.

Django's psycopg 3 backend parses every `timestamptz` with a loader that subclasses psycopg's
pure-Python one (to force the connection's tzinfo onto the result): a third of the time of
every row with a timestamp goes there on this hardware. psycopg's C loader (psycopg_binary)
does the same parse in C. With USE_TZ the
session time zone is UTC and the C loader already returns `tzinfo=datetime.timezone.utc`, the
exact value Django's loader forces, so on such connections it is swapped in.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from psycopg import adapters, pq
from psycopg.adapt import Loader

# psycopg's own map holds its fastest timestamptz loader: the C one when psycopg_binary (or
# psycopg_c) is installed.
_CTimestamptzLoader = adapters.get_loader(adapters.types["timestamptz"].oid, pq.Format.TEXT)
if pq.__impl__ == "python":  # pragma: no cover - the lock installs psycopg[binary]
    _CTimestamptzLoader = None


class UTCTimestamptzLoader(Loader):
    """psycopg's C timestamptz loader behind the `timezone` attribute Django's create_cursor()
    compares with the connection's zone (the C class cannot be subclassed)."""

    timezone = UTC

    def __init__(self, oid: int, context: Any = None):
        super().__init__(oid, context)
        self._c_load = _CTimestamptzLoader(oid, context).load

    def load(self, data: Any) -> Any:
        return self._c_load(data)


def use_c_timestamptz_loader(sender: Any, connection: Any, **kwargs: Any) -> None:
    """connection_created receiver: the C timestamptz loader on UTC PostgreSQL connections."""
    if _CTimestamptzLoader is None or connection.vendor != "postgresql":
        return
    if (
        connection.timezone != UTC
        or connection.connection.info.parameter_status("TimeZone") != "UTC"
    ):
        return
    connection.connection.adapters.register_loader("timestamptz", UTCTimestamptzLoader)
