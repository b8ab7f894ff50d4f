"""Immediate pushes: after a transaction that wrote a booking audit row (or changed what a
BookingLocation shows) commits, nudge the push sweep. The sweep reads the database, so a lost
nudge only delays a push until the next beat sweep.

Sessions, CDRs and tariffs have no audit trail to sweep: their Push rows are written here, in the
transaction that records the change (the chargers and locations signals), then nudged. A
session's start and meter go out as they come (the meter at a bounded rate); its end goes out
with its CDR. The
receivers of chargers' signals run after bookings' (INSTALLED_APPS order), so a session that
redeems a booking is pushed to the booking's eMSP."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from bookings.signals import booking_audited
from chargers.models import ChargeDetailRecord, ChargingSession
from chargers.signals import (
    cdr_issued,
    remote_command_answered,
    session_started,
    session_updated,
)
from locations.models import EVSE, BookingPolicy, Location, PriceComponent, Tariff, TariffElement

logger = logging.getLogger(__name__)


def nudge() -> None:
    """Queue a push sweep soon (at most one per window across every process)."""
    from config.celery import sweep_soon

    from .tasks import push_sweep_task

    sweep_soon(push_sweep_task)


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


def _push_session(session: ChargingSession, **options) -> None:
    from .push import queue_charge_pushes

    queue_charge_pushes(kind="SESSION", booking_id=session.booking_id, id_tag=session.id_tag,
                        session_id=session.pk, **options)  # fmt: skip
    _nudge_on_commit()


@receiver(session_started, dispatch_uid="ocpi_session_started")
@receiver(session_updated, dispatch_uid="ocpi_session_updated")
def _session_started_or_updated(sender, session, **kwargs):
    # A start is pushed at once; a 2.0.1 charger reports it again with every Updated event
    # that carries its token, and those count as updates, at the bounded rate.
    from django.conf import settings

    interval = timedelta(seconds=settings.OCPI_SESSION_PUSH_INTERVAL_SECONDS)
    _push_session(session, unless_within=interval)


@receiver(cdr_issued, dispatch_uid="ocpi_cdr_issued")
def _cdr_issued(sender, cdr: ChargeDetailRecord, **kwargs):
    # A session's end is pushed with its CDR, which is issued in the transaction that records
    # the end (bookings.billing): the COMPLETED Session first, then the CDR.
    from .push import queue_charge_pushes

    if cdr.session is not None:
        _push_session(cdr.session)
    queue_charge_pushes(kind="CDR", booking_id=cdr.booking_id, id_tag=cdr.id_tag, cdr_id=cdr.pk,
                        cdr_session_id=cdr.session_id)  # fmt: skip
    _nudge_on_commit()


@receiver(post_save, sender=Tariff, dispatch_uid="ocpi_tariff_saved")
@receiver(post_delete, sender=Tariff, dispatch_uid="ocpi_tariff_deleted")
@receiver(post_save, sender=TariffElement, dispatch_uid="ocpi_tariff_element_saved")
@receiver(post_delete, sender=TariffElement, dispatch_uid="ocpi_tariff_element_deleted")
@receiver(post_save, sender=PriceComponent, dispatch_uid="ocpi_price_component_saved")
@receiver(post_delete, sender=PriceComponent, dispatch_uid="ocpi_price_component_deleted")
def _tariff_changed(sender, instance, **kwargs):
    from .push import queue_tariff_pushes

    if sender is Tariff:
        uid = instance.ocpi_id
    elif sender is TariffElement:
        uid = Tariff.objects.filter(pk=instance.tariff_id).values_list("ocpi_id", flat=True).first()
    else:
        uid = (
            Tariff.objects.filter(elements__pk=instance.element_id)
            .values_list("ocpi_id", flat=True)
            .first()
        )
    if uid:
        queue_tariff_pushes(tariff_uids=[uid])
        _nudge_on_commit()


@receiver(remote_command_answered, dispatch_uid="ocpi_remote_command_answered")
def _remote_command_answered(sender, remote_command, **kwargs):
    """The charger answered a START_SESSION, STOP_SESSION or UNLOCK_CONNECTOR: its
    CommandResult can go (the results sweep sends what this misses)."""
    from config.celery import enqueue_on_commit

    from .models import Command
    from .tasks import command_result_task

    for pk in Command.objects.filter(remote_command=remote_command).values_list("pk", flat=True):
        enqueue_on_commit(command_result_task, command_id=pk)
