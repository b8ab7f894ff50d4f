"""What the operator's view of health needs that no other app keeps: when each beat sweep last
finished. The sweeps themselves keep no run record (the database says what is due, not when
it was last looked at)."""

from __future__ import annotations

from django.db import models


class SweepRun(models.Model):
    """The last time a beat task (CELERY_BEAT_SCHEDULE) finished without an error."""

    task = models.CharField(max_length=100, unique=True)
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["task"]

    def __str__(self) -> str:
        return f"{self.task} @ {self.finished_at:%Y-%m-%d %H:%M:%S}"
