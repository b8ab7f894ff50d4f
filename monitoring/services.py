"""Recording the sweeps' runs: one upsert per finished beat task, in the worker."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from .models import SweepRun

logger = logging.getLogger(__name__)


def beat_tasks() -> set[str]:
    """The task names beat sends (settings.CELERY_BEAT_SCHEDULE)."""
    return {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}


def sweep_run_record(*, task: str, at: datetime) -> None:
    """Record that a beat task finished at `at` (INSERT ... ON CONFLICT: one statement)."""
    SweepRun.objects.bulk_create(
        [SweepRun(task=task, finished_at=at)],
        update_conflicts=True,
        unique_fields=["task"],
        update_fields=["finished_at"],
    )


def record_sweep(sender: Any = None, **kwargs: Any) -> None:
    """Celery's task_success receiver: record the run if the task is a beat sweep. A database
    that does not answer only costs the record; the sweep has done its work."""
    name = getattr(sender, "name", None)
    if name not in beat_tasks():
        return
    try:
        sweep_run_record(task=name, at=timezone.now())
    except DatabaseError:
        logger.warning("Could not record the run of %s", name, exc_info=True)
