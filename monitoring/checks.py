"""Readiness checks on django-health-check's HealthCheck: its own for PostgreSQL and Redis, ours
for the Celery workers, beat's sweeps and the csms processes. Each raises ServiceUnavailable
with a message an operator can act on; a check may leave figures in `detail` for the answer."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable

from chargers import gateway

from .models import SweepRun
from .services import beat_tasks

CELERY_REPLY_SECONDS = 1.0  # how long workers have to answer the broadcast


@dataclasses.dataclass
class CeleryQueues(HealthCheck):
    """Every queue the tasks are routed to (the default `celery`, and `ocpi`) has a worker
    that answers."""

    detail: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def run(self) -> None:
        from config.celery import app

        wanted = {app.conf.task_default_queue}
        wanted |= {route["queue"] for route in (settings.CELERY_TASK_ROUTES or {}).values()}
        try:
            with app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1)
                inspect = app.control.inspect(timeout=CELERY_REPLY_SECONDS, connection=conn)
                replies = inspect.active_queues() or {}
        except Exception as error:  # kombu's errors for a broker that does not answer
            message = f"the broker does not answer ({type(error).__name__})"
            raise ServiceUnavailable(message) from error
        consumed = {queue["name"] for queues in replies.values() for queue in queues}
        self.detail = {"workers": len(replies)}
        if not replies:
            raise ServiceUnavailable("no Celery worker answers")
        missing = sorted(wanted - consumed)
        if missing:
            raise ServiceUnavailable(f"no worker consumes the queue(s) {', '.join(missing)}")


@dataclasses.dataclass
class Sweeps(HealthCheck):
    """Beat sends the sweeps and the workers finish them: the newest recorded run is at most
    HEALTH_SWEEP_MAX_AGE_SECONDS old."""

    detail: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def run(self) -> None:
        try:
            newest = SweepRun.objects.filter(task__in=beat_tasks()).aggregate(
                newest=Max("finished_at")
            )["newest"]
        finally:
            connection.close()  # the check runs on a thread of its own, which then ends
        if newest is None:
            raise ServiceUnavailable("no sweep has finished yet (beat and a worker running?)")
        age = (timezone.now() - newest).total_seconds()
        self.detail = {"last_sweep_age_seconds": round(age, 1)}
        if age > settings.HEALTH_SWEEP_MAX_AGE_SECONDS:
            raise ServiceUnavailable(
                f"the last sweep finished {age:.0f} s ago (beat or the workers stopped?)"
            )


@dataclasses.dataclass
class CsmsProcesses(HealthCheck):
    """At least one csms process is up and reading the command bus (it reports there every
    10 s); the detail counts the chargers they hold."""

    detail: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def run(self) -> None:
        try:
            nodes = gateway.csms_nodes()
        except redis.RedisError as error:
            raise ServiceUnavailable("the command bus (Redis) does not answer") from error
        self.detail = {
            "processes": len(nodes),
            "connected_chargers": sum(node.connected for node in nodes),
        }
        if not nodes:
            raise ServiceUnavailable("no csms process reports on the command bus")


def _redis_client() -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


def readiness_checks(scope: str) -> dict[str, HealthCheck]:
    """The checks by name: scope "web" is what this web process needs to answer (PostgreSQL,
    Redis); "stack" adds the workers, beat and the csms."""
    timeout = datetime.timedelta(seconds=settings.HEALTH_CHECK_TIMEOUT_SECONDS)
    checks: dict[str, HealthCheck] = {
        "postgresql": Database(),
        "redis": Redis(client_factory=_redis_client),
    }
    if scope == "stack":
        checks |= {"celery": CeleryQueues(), "beat": Sweeps(), "csms": CsmsProcesses()}
    for check in checks.values():
        check.timeout = timeout
    return checks
