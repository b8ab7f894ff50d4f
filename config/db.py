"""Database connection tuning: the C timestamptz loader, and prepared statements.

Django's psycopg 3 backend parses every `timestamptz` with a loader that subclasses psycopg's
pure-Python one (to force the connection's tzinfo onto the result): a third of the time of
every row with a timestamp goes there on this hardware. psycopg's C loader (psycopg_binary)
does the same parse in C. With USE_TZ the
session time zone is UTC and the C loader already returns `tzinfo=datetime.timezone.utc`, the
exact value Django's loader forces, so on such connections it is swapped in.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import psycopg.errors
from django.db import DatabaseError
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


# --- Prepared statements -------------------------------------------------------------------


class Prepared:
    """A statement PREPAREd on each database connection the first time it runs there, then run
    as `EXECUTE name(...)`: PostgreSQL parses and plans it once per connection instead of on
    every call (measured: the OCPI BookingRequest's location and EVSE reads cost 0.66 ms of
    backend CPU as plain statements, 0.26 ms prepared).

    `sql` is written as for cursor.execute (`%s` placeholders). The EXECUTE goes through the
    same client-side binding as any query, so prepared statements still travel several to a
    round trip (execute_prepared). Prepared statements live in the server session: behind a
    pooler in transaction mode (PgBouncer and the like) they would be lost between
    transactions, so this code expects direct or session-pooled connections.
    """

    def __init__(self, name: str, sql: str):
        count = 0

        def number(match: re.Match) -> str:
            nonlocal count
            if match.group(0) == "%%":
                return "%"
            count += 1
            return f"${count}"

        self.name = name
        self.prepare_sql = f"PREPARE {name} AS {re.sub(r'%[s%]', number, sql)}"
        self.execute_sql = (
            f"EXECUTE {name}({', '.join(['%s'] * count)})" if count else (f"EXECUTE {name}")
        )


# Per psycopg connection (one server session): the names prepared there.
_prepared: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def execute_prepared(
    cursor: Any, calls: Sequence[tuple[Prepared, Sequence[Any]]], *, retry: bool = True
) -> None:
    """Run the prepared statements with their parameters as one statement string (one round
    trip; read the results with fetch*/nextset). The first time a connection meets one of them,
    one more round trip PREPAREs it there (PREPARE is not undone by a rollback).

    Each EXECUTE is bound on its own (cursor.mogrify), then the string is sent without
    parameters: psycopg caches the parsing of a query only up to 50 parameters, which a whole
    booking's write exceeds.
    """
    raw = cursor.connection
    known = _prepared.get(raw)
    if known is None:
        known = _prepared[raw] = set()
    missing = [p for p, _ in calls if p.name not in known]
    if missing:
        cursor.execute("; ".join(dict.fromkeys(p.prepare_sql for p in missing)))
        known.update(p.name for p in missing)
    sql = "; ".join(cursor.mogrify(p.execute_sql, params) for p, params in calls)
    try:
        cursor.execute(sql)
    except DatabaseError as error:
        if not isinstance(error.__cause__, psycopg.errors.InvalidSqlStatementName):
            raise
        # The session lost them (DEALLOCATE, a pooler that switched sessions): prepare again.
        # Outside a transaction nothing ran, so run once more; inside one, the caller's
        # transaction is aborted and the error goes to it.
        known.clear()
        if not retry or cursor.db.in_atomic_block:
            raise
        execute_prepared(cursor, calls, retry=False)
