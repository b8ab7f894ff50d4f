"""The Celery app: configuration comes from Django settings under the CELERY_ namespace."""

import logging
import os
from functools import partial
from typing import Any

from celery import Celery, Task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("chargebook")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


logger = logging.getLogger(__name__)


def enqueue_on_commit(task: Task, /, **kwargs: Any) -> None:
    """Queue `task` once the current transaction commits (at once outside a transaction).

    The write has committed by then, so a broker that cannot be reached only logs a warning and
    the answer still reports the commit: each such task has a beat sweep that finds the same
    work in the database (ARCHITECTURE.md, "the database says what is due").
    """
    from django.db import transaction

    transaction.on_commit(partial(_send, task, kwargs))


def _send(task: Task, kwargs: dict[str, Any]) -> None:
    try:
        task.delay(**kwargs)
    except Exception:
        logger.warning(
            "Could not queue %s(%s); its sweep will pick it up",
            task.name,
            ", ".join(f"{k}={v!r}" for k, v in kwargs.items()),
            exc_info=True,
        )


SWEEP_SOON_WINDOW_MS = 200  # at most one queued run of a sweep per this many ms

_redis_clients: dict[str, Any] = {}


def redis_client():
    """A Redis client for small coordination keys (socket timeouts of 1 s), one per URL."""
    import redis
    from django.conf import settings

    url = settings.REDIS_URL
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    return _redis_clients[url]


def sweep_soon_key(task: Task) -> str:
    return f"sweep-soon:{task.name}"


def sweep_soon(task: Task, window_ms: int = SWEEP_SOON_WINDOW_MS) -> None:
    """Queue a run of a sweep task soon, at most one per window across every process: the
    first call of a window sets a Redis key that lives as long as the window and queues the
    task to run when it ends, so that run reads every commit made during the window. The sweep
    reads the database, so a call lost with Redis only delays the work until beat's run."""
    try:
        if redis_client().set(sweep_soon_key(task), 1, nx=True, px=window_ms):
            task.apply_async(countdown=window_ms / 1000)
    except Exception:
        logger.warning("Could not queue %s soon; beat's run will do", task.name, exc_info=True)


def sweep_soon_on_commit(task: Task) -> None:
    """sweep_soon once the current transaction commits (dropped on rollback)."""
    from django.db import transaction

    transaction.on_commit(partial(sweep_soon, task))
