"""Immediate pushes: after a transaction that wrote a booking audit row (or changed what a
BookingLocation shows) commits, nudge the push sweep. The sweep reads the database, so a lost
nudge only delays a push until the next beat sweep."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from bookings.signals import booking_audited
from locations.models import EVSE, BookingPolicy, Location

logger = logging.getLogger(__name__)

NUDGE_DEBOUNCE_MS = 200  # at most one queued sweep per this many ms, whatever the booking rate


_redis_clients: dict[str, object] = {}


def _redis():
    import redis
    from django.conf import settings

    url = settings.REDIS_URL
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    return _redis_clients[url]


NUDGE_KEY = "ocpi:push-nudge"


def nudge() -> None:
    """Queue a push sweep soon, at most one per NUDGE_DEBOUNCE_MS across every process: the
    first nudge of a window sets a Redis key that lives as long as the window and queues a
    sweep to run when it ends, so that sweep reads every commit made during the window."""
    from .tasks import push_sweep_task

    try:
        if _redis().set(NUDGE_KEY, 1, nx=True, px=NUDGE_DEBOUNCE_MS):
            push_sweep_task.apply_async(countdown=NUDGE_DEBOUNCE_MS / 1000)
    except Exception:
        logger.warning("Could not nudge the OCPI push sweep", exc_info=True)


def _nudge_on_commit() -> None:
    transaction.on_commit(nudge)  # runs at once outside a transaction, dropped on rollback


@receiver(booking_audited, dispatch_uid="ocpi_booking_audited")
def _booking_audited(sender, booking_ids, **kwargs):
    _nudge_on_commit()


@receiver(post_save, sender=EVSE, dispatch_uid="ocpi_evse_saved")
@receiver(post_save, sender=Location, dispatch_uid="ocpi_location_saved")
@receiver(post_save, sender=BookingPolicy, dispatch_uid="ocpi_policy_saved")
def _availability_source_saved(sender, instance, **kwargs):
    from .push import queue_location_pushes

    if sender is EVSE:
        evse_ids = [instance.pk]
    elif sender is BookingPolicy:
        evse_ids = (
            [instance.evse_id]
            if instance.evse_id
            else list(EVSE.objects.of_location(instance.location).values_list("pk", flat=True))
        )
    else:
        evse_ids = list(EVSE.objects.of_location(instance).values_list("pk", flat=True))
    if evse_ids:
        queue_location_pushes(evse_ids=evse_ids)
        _nudge_on_commit()
