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
