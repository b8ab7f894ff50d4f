"""Django's PostgreSQL backend with a health check that costs no round trip when the
connection is quiet.

With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before the first query of every request on a
persistent connection: on the OCPI BookingRequest that was one round trip in five. A server
that ends a session (restart, idle timeout, pg_terminate_backend) sends a FATAL message or
closes the socket, which makes it readable; an idle connection with nothing to read and no
transaction open is used as it is, and any other state gets Django's own `SELECT 1` check.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


def _quiet(connection) -> bool:
    """An open, idle connection whose server has sent nothing since its last answer."""
    if connection.closed or connection.broken:
        return False
    if connection.info.transaction_status != pq.TransactionStatus.IDLE:
        return False
    readable, _, _ = select.select([connection.fileno()], [], [], 0)
    return not readable


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and self.pool is None
            and _quiet(self.connection)
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
