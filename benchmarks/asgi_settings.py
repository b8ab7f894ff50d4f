"""Settings for the `uvicorn` candidate of benchmarks/servers.py.

Under ASGI each request runs its synchronous code on a thread of its own, so a persistent
database connection per thread is never reused and stays open until PostgreSQL refuses new
clients; Django's database docs ask for persistent connections to be off under ASGI.
"""

from config.settings import *  # noqa: F403
from config.settings import DATABASES

DATABASES["default"]["CONN_MAX_AGE"] = 0
