"""The test database as a URL, for the processes a fault test starts (they see it only through
transactional_db: every row is committed)."""

from __future__ import annotations

from urllib.parse import quote


def test_database_url() -> str:
    """The connection's settings as DATABASE_URL. The host is quoted: the embedded server
    `make test` starts listens on a socket directory, a path, not a host name."""
    from django.db import connection

    s = connection.settings_dict
    user = quote(s.get("USER") or "postgres", safe="")
    password = f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    netloc = quote(host, safe="") if host.startswith("/") else f"{host}:{s.get('PORT') or 5432}"
    return f"postgres://{user}{password}@{netloc}/{quote(s['NAME'], safe='')}"


test_database_url.__test__ = False  # a helper, not a test
