"""In-order delivery of an outbox to one partner: the mechanism behind the OCPI pushes (ocpi.push,
a queue per eMSP party) and the operator API's webhooks (api.webhooks, a queue per subscription).

A queue is one owner's rows still PENDING, sent one at a time in id order. The head waits out
its backoff and everything behind it waits with it, so a partner sees changes in the order they
happened; a row that failed MAX_ATTEMPTS times is given up and the rest go on. One deliverer per
owner runs at a time: it takes a lease on the owner's row (a timestamp column, compared and set
in one UPDATE), renews it before every send, stops as soon as it is no longer its own, and
releases only its own. A deliverer starts no send after BUDGET and stops after `limit` sends;
with rows still waiting it answers `retry_at` = now, so that a fresh task goes on at once.

Everything is decided from the database: a lost task or a crashed worker loses nothing, its
lease runs out and the next sweep starts a deliverer for what is due.

The rows' bookkeeping columns are the same in every outbox: `state` (PENDING, SENT, GAVE_UP and
any of the interface's own), `attempts`, `next_attempt_at`, `last_status`, `last_error`,
`sent_at`. An interface subclasses Outbox with only what is its own.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)

# How long one deliverer owns a queue. It is renewed before every send, and one send lasts at
# most the HTTP deadline (OUTBOUND_HTTP_DEADLINE_SECONDS), so it cannot run out mid-send.
LEASE = timedelta(minutes=2)
BUDGET = timedelta(seconds=60)  # a deliverer starts no send after this long; the next one goes on
MAX_ATTEMPTS = 12  # with the backoff below, about 5 hours of retrying before giving up
BACKOFF_BASE_SECONDS = 5
BACKOFF_MAX_SECONDS = 3600

PENDING, SENT, GAVE_UP = "PENDING", "SENT", "GAVE_UP"  # the row states delivery reads and writes


def backoff(attempts: int) -> timedelta:
    """Exponential: 5 s, 10 s, 20 s, ... capped at an hour."""
    seconds = BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, BACKOFF_MAX_SECONDS))


def due_owners(rows: QuerySet, owner_field: str, *, now: datetime) -> set[int]:
    """The owners (their ids in `owner_field`) of rows due now: pending and past any backoff.
    A sweep starts a deliverer for each."""
    due = rows.filter(state=PENDING).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    return set(due.values_list(owner_field, flat=True).distinct())


class SendFailed(Exception):
    """A row was not delivered: retried after its backoff. `status` is recorded as its last
    status (the partner's HTTP or protocol status, or "unreachable")."""

    def __init__(self, message: str, *, status: str = "unreachable") -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Delivery:
    """What one deliverer did, and when the queue wants a deliverer again (None: nothing waits)."""

    sent: int = 0
    failed: bool = False
    retry_at: datetime | None = None

    def countdown(self) -> float | None:
        """Seconds until the next deliverer should start (at least 1), or None for none."""
        if self.retry_at is None:
            return None
        return max((self.retry_at - timezone.now()).total_seconds(), 1)


class Outbox(ABC):
    """One owner's queue. A subclass says which row owns it (and in which column its lease
    lives), which rows are its, how one is sent, and what else a sent row settles."""

    lease_field: str  # the owner's nullable DateTimeField that holds the lease

    @abstractmethod
    def owner(self) -> QuerySet:
        """The queue's owner (one row)."""

    @abstractmethod
    def rows(self) -> QuerySet:
        """The queue's rows in every state."""

    @abstractmethod
    def send(self, row: Any, *, started: datetime) -> str:
        """Send one row; returns the status to record. Raises SendFailed."""

    def prepare(self) -> bool:
        """Under the lease, before the first send: load what sending needs and settle rows that
        are not to be sent. False when nothing is to be sent now."""
        return True

    def settle(self, row: Any, *, started: datetime, sent_at: datetime) -> None:
        """What else a sent row settles (later rows it makes unnecessary); nothing by default."""
        return None

    def pending(self) -> QuerySet:
        return self.rows().filter(state=PENDING)

    def deliver(self, *, now: datetime | None = None, limit: int = 500) -> Delivery:
        """Send the pending rows in id order, stopping at the first failure (retried with
        exponential backoff), after BUDGET, or after `limit` sends, unless another deliverer
        holds the queue. `now` is the deliverer's clock, the real one once that is later."""
        now = now or timezone.now()
        began = time.monotonic()
        result = Delivery()
        lease = self._claim(now)
        if lease is None:
            return result
        try:
            if not self.prepare():
                return result
            pending = self.pending()
            for _ in range(limit):
                row = pending.order_by("id").first()
                if row is None:
                    break
                started = max(now, timezone.now())
                if row.next_attempt_at and row.next_attempt_at > started:
                    result.retry_at = row.next_attempt_at
                    break  # in order: later rows wait behind this one
                if time.monotonic() - began > BUDGET.total_seconds():
                    result.retry_at = started
                    break
                lease = self._renew(lease)
                if lease is None:
                    logger.warning("%s: lease lost; another deliverer goes on", self)
                    break
                try:
                    status = self.send(row, started=started)
                except SendFailed as error:
                    result.failed = True
                    retry_at = self._record_failure(row, error, started)
                    if retry_at is None:
                        continue  # given up: the next row goes
                    result.retry_at = retry_at
                    break
                sent_at = timezone.now()
                self.settle(row, started=started, sent_at=sent_at)
                self.rows().filter(pk=row.pk).update(
                    state=SENT, attempts=row.attempts + 1, sent_at=sent_at, last_status=status,
                    last_error="",
                )  # fmt: skip
                result.sent += 1
            else:  # `limit` sends done: if more wait, a fresh task goes on at once
                if pending.exists():
                    result.retry_at = timezone.now()
        finally:
            if lease is not None:  # only its own: a lost lease belongs to the next deliverer
                self.owner().filter(**{self.lease_field: lease}).update(**{self.lease_field: None})
        return result

    def _record_failure(self, row: Any, error: SendFailed, started: datetime) -> datetime | None:
        """Count the attempt; returns when to try again, or None once given up."""
        attempts = row.attempts + 1
        gave_up = attempts >= MAX_ATTEMPTS
        retry_at = started + backoff(attempts)
        self.rows().filter(pk=row.pk).update(
            state=GAVE_UP if gave_up else PENDING, attempts=attempts, last_error=str(error)[:2000],
            last_status=error.status, next_attempt_at=retry_at,
        )  # fmt: skip
        logger.warning("%s: row %s failed (attempt %s): %s", self, row.pk, attempts, error)
        return None if gave_up else retry_at

    def _claim(self, now: datetime) -> datetime | None:
        """Take the queue for LEASE unless another deliverer holds it; returns the lease."""
        until = now + LEASE
        free = Q(**{f"{self.lease_field}__isnull": True}) | Q(**{f"{self.lease_field}__lt": now})
        taken = self.owner().filter(free).update(**{self.lease_field: until})
        return until if taken else None

    def _renew(self, lease: datetime) -> datetime | None:
        """Extend a lease still held (its expiry unchanged since taken); None once lost."""
        until = timezone.now() + LEASE
        kept = self.owner().filter(**{self.lease_field: lease}).update(**{self.lease_field: until})
        return until if kept else None
