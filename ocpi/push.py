"""Pushes to eMSPs: an outbox of Push rows, delivered per party in id order, one party never
waiting on another.

- Bookings and BookingLocations (Bookings Receiver, digest 4.4.1-4.4.3): the sweep reads the
  bookings audit trail past its own cursor and turns each row into Push rows (the owning eMSP's
  Booking; every party's BookingLocation when availability changed).
- Sessions, CDRs and Tariffs: queued in the transaction that records the change (ocpi.signals,
  on the chargers and locations signals): a session's start and end and, while it runs, its
  meter at a bounded rate; each CDR once; a tariff whenever it is saved or deleted.

Every push but a CDR is a PUT of the whole current object (or a DELETE of a tariff gone), so it
is idempotent, and pending pushes of the same object are coalesced into one: the receiver always
ends with the newest state. A CDR is POSTed once, as the Receiver interface says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from bookings.models import BLOCKING_STATUSES, Booking, BookingTransition
from bookings.selectors import audit_rows_after, booking_detail_queryset
from locations.models import EVSE
from locations.selectors import tariff_catalog, tariff_list
from partners.outbox import Delivery, Outbox, SendFailed, due_owners

from . import client
from .models import Party, Push, PushCursor
from .selectors import (
    BookingLocationData,
    bookable_evses,
    booking_locations,
    calendar_window,
    cdrs_of_party,
    owners_of_charge,
    parties_to_push,
    sessions_of_party,
)

logger = logging.getLogger(__name__)

SWEEP_BATCH = 2000  # audit rows read per sweep pass

Event = BookingTransition.Event
AVAILABILITY_EVENTS = {Event.CREATED, Event.STATUS, Event.CHANGED}


def _affects_availability(row: BookingTransition) -> bool:
    if row.event not in AVAILABILITY_EVENTS:
        return False
    if row.event == Event.STATUS:
        return (row.from_status in BLOCKING_STATUSES) != (row.to_status in BLOCKING_STATUSES)
    if row.event == Event.CREATED:
        return row.to_status in BLOCKING_STATUSES
    return True


def queue_location_pushes(*, evse_ids: list[int], transition_id: int | None = None) -> None:
    """Queue a BookingLocation PUT of these EVSEs to every registered party."""
    parties = list(parties_to_push().values_list("pk", flat=True))
    Push.objects.bulk_create(
        [
            Push(
                party_id=p, kind=Push.Kind.BOOKING_LOCATION, evse_id=e, transition_id=transition_id
            )
            for p in parties
            for e in evse_ids
        ],
        ignore_conflicts=True,
    )


@dataclass
class SweepResult:
    parties: set[int]  # parties with pushes due
    command_bookings: set[int]  # ReserveNow bookings whose charger state or status changed


def sweep(*, now: datetime | None = None) -> SweepResult:
    """Turn new audit rows into Push rows; returns who has something to send."""
    now = now or timezone.now()
    parties = {(p.country_code, p.party_id): p.pk for p in parties_to_push()}
    with transaction.atomic():
        cursor, _ = PushCursor.objects.select_for_update().get_or_create(name="bookings")
        # A lower id may still commit: it comes again next time (pushes are idempotent).
        rows, new_cursor = audit_rows_after(
            last_id=cursor.last_transition_id, now=now, limit=SWEEP_BATCH
        )
        pushes = []
        command_bookings = set()
        for row in rows:
            booking = row.booking
            if booking.channel == Booking.Channel.COMMAND and row.event in (
                Event.CHARGER,
                Event.STATUS,
            ):
                command_bookings.add(booking.pk)
            owner = parties.get((booking.emsp_country_code, booking.emsp_party_id))
            if owner is not None:
                pushes.append(Push(party_id=owner, kind=Push.Kind.BOOKING, booking_id=booking.pk,
                                   transition_id=row.id))  # fmt: skip
            if _affects_availability(row):
                evse_ids = {booking.evse_id} - {None}
                before = (row.details or {}).get("before") or {}
                if before.get("evse"):
                    evse_ids |= set(
                        EVSE.objects.filter(uid=before["evse"]).values_list("pk", flat=True)
                    )
                pushes.extend(
                    Push(party_id=p, kind=Push.Kind.BOOKING_LOCATION, evse_id=e,
                         transition_id=row.id)
                    for p in parties.values()
                    for e in evse_ids
                )  # fmt: skip
        Push.objects.bulk_create(pushes, ignore_conflicts=True)
        if new_cursor != cursor.last_transition_id:
            cursor.last_transition_id = new_cursor
            cursor.save(update_fields=["last_transition_id", "updated_at"])
    return SweepResult(
        parties=due_owners(Push.objects.all(), "party_id", now=now),
        command_bookings=command_bookings,
    )


def _same_target(push: Push) -> Q:
    """Pending pushes this one makes unnecessary (a PUT of an object's current state covers
    every earlier PUT of it; a CDR is POSTed once and covers nothing else)."""
    target = {
        Push.Kind.BOOKING: Q(booking_id=push.booking_id),
        Push.Kind.BOOKING_LOCATION: Q(evse_id=push.evse_id),
        Push.Kind.SESSION: Q(session_id=push.session_id),
        Push.Kind.CDR: Q(pk=push.pk),
        Push.Kind.TARIFF: Q(tariff_uid=push.tariff_uid),
    }[push.kind]
    return Q(kind=push.kind) & target


# The module (and interface) each kind of push goes to on the party's side.
MODULE_OF = {
    Push.Kind.BOOKING: "booking",
    Push.Kind.BOOKING_LOCATION: "booking",
    Push.Kind.SESSION: "sessions",
    Push.Kind.CDR: "cdrs",
    Push.Kind.TARIFF: "tariffs",
}


def receiver_url(party: Party, kind: str) -> str | None:
    """The party's Receiver endpoint for this kind of push, if it has one."""
    module = MODULE_OF[kind]
    return party.endpoint(module, "RECEIVER") or (
        party.endpoint(module) if module == "booking" else None
    )


def queue_charge_pushes(
    *,
    kind: str,
    booking_id: int | None,
    id_tag: str,
    session_id: int | None = None,
    cdr_id: int | None = None,
    cdr_session_id: int | None = None,
    unless_within: timedelta | None = None,
) -> None:
    """Queue a Session PUT (or a CDR POST, with its session's id as `cdr_session_id`) to the
    parties it belongs to. With `unless_within`, nothing is queued when a push of this session
    was queued that recently: a running session is pushed at a bounded rate, whatever its meter
    sends (one indexed query per meter value)."""
    if (
        unless_within is not None
        and Push.objects.filter(
            kind=kind, session_id=session_id, created_at__gte=timezone.now() - unless_within
        ).exists()
    ):
        return
    owners = owners_of_charge(
        booking_id=booking_id, id_tag=id_tag,
        session_id=session_id if session_id is not None else cdr_session_id,
    )  # fmt: skip
    Push.objects.bulk_create(
        [Push(party_id=p, kind=kind, session_id=session_id, cdr_id=cdr_id) for p in owners],
        ignore_conflicts=True,
    )


def queue_tariff_pushes(*, tariff_uids: list[str]) -> None:
    """Queue a Tariff PUT (or DELETE, once it is gone) of these tariffs to every party."""
    parties = list(parties_to_push().values_list("pk", flat=True))
    Push.objects.bulk_create(
        [
            Push(party_id=p, kind=Push.Kind.TARIFF, tariff_uid=u)
            for p in parties
            for u in tariff_uids
        ]
    )


def _location_body(evse_id: int, now: datetime) -> tuple[str, dict]:
    from .modules.bookings.serializers import booking_location_object

    keys = bookable_evses(pk=evse_id, now=now)
    window = calendar_window(None, None, now)
    found = booking_locations(evses=keys, window=window, now=now) if keys else []
    if found:
        bl = found[0]
    else:
        # No longer bookable: an empty calendar list withdraws it (A9).
        evse = EVSE.objects.select_related("charge_point__location").get(pk=evse_id)
        from locations.selectors import policy_for

        bl = BookingLocationData(
            evse=evse, location=evse.charge_point.location,
            policy=policy_for(evse), calendars=[], last_updated=now,
        )  # fmt: skip
    return bl.evse.uid, booking_location_object(bl)


def _send(party: Party, push: Push, base: str, now: datetime, memo: dict) -> None:
    """Send one push; `memo` keeps what several sends of one deliverer share (the tariffs)."""
    from .modules.bookings.serializers import booking_object
    from .modules.bookings.versions import for_party

    cc, pid = settings.OCPI_COUNTRY_CODE, settings.OCPI_PARTY_ID
    base = base.rstrip("/")
    method, body = "PUT", None
    if push.kind == Push.Kind.BOOKING:
        booking = booking_detail_queryset().get(pk=push.booking_id)
        url = f"{base}/{cc}/{pid}/{booking.uid}"
        body = for_party(party.booking_module_version, "booking", booking_object(booking))
    elif push.kind == Push.Kind.BOOKING_LOCATION:
        uid, body = _location_body(push.evse_id, now)
        url = f"{base}/{cc}/{pid}/booking_locations/{uid}"
        body = for_party(party.booking_module_version, "booking_location", body)
    elif push.kind == Push.Kind.SESSION:
        from .modules.sessions.serializers import session_context, session_object

        session = sessions_of_party(party).get(pk=push.session_id)
        if "catalog" not in memo:
            memo["catalog"] = tariff_catalog()
        context = session_context(party, [session], catalog=memo["catalog"])
        url = f"{base}/{cc}/{pid}/{session.pk}"
        body = session_object(session, party=party, context=context, now=now)
    elif push.kind == Push.Kind.CDR:
        from .modules.cdrs.apis import cdr_objects

        method, url = "POST", base
        body = cdr_objects(party, [cdrs_of_party(party).get(pk=push.cdr_id)])[0]
    else:
        from .modules.tariffs.serializers import tariff_object

        url = f"{base}/{cc}/{pid}/{push.tariff_uid}"
        tariff = tariff_list().filter(ocpi_id=push.tariff_uid).first()
        if tariff is None:
            method = "DELETE"
        else:
            body = tariff_object(tariff, booking_module_version=party.booking_module_version)
    client.call(method, url, token=party.token_b, raw_token=party.legacy_raw_token, json=body,
                to=(party.country_code, party.party_id))  # fmt: skip


class PartyPushes(Outbox):
    """A party's pushes (partners.outbox delivers them): PUT or POST to its Receivers, skipped
    where it has none, and a sent PUT covers the pushes of the same object queued before it."""

    lease_field = "push_lease_until"
    party: Party  # loaded under the lease (prepare)

    def __init__(self, party_id: int) -> None:
        self.party_id = party_id
        self.memo: dict = {}  # what several sends of one deliverer share (the tariffs)

    def __str__(self) -> str:
        return f"Pushes to party {self.party_id}"

    def owner(self) -> QuerySet[Party]:
        return Party.objects.filter(pk=self.party_id)

    def rows(self) -> QuerySet[Push]:
        return Push.objects.filter(party_id=self.party_id)

    def prepare(self) -> bool:
        self.party = Party.objects.get(pk=self.party_id)
        pending = self.pending()
        if not self.party.is_registered or not self.party.token_b:
            pending.update(state=Push.State.SKIPPED, last_error="The party is not registered.")
            return False
        # Pushes to modules the party has no Receiver of are not sent (it reads them instead).
        for kind in MODULE_OF:
            if not receiver_url(self.party, kind):
                pending.filter(kind=kind).update(
                    state=Push.State.SKIPPED,
                    last_error=f"No {MODULE_OF[kind]} Receiver endpoint.",
                )
        return True

    def send(self, row: Push, *, started: datetime) -> str:
        try:
            _send(self.party, row, receiver_url(self.party, row.kind), started, self.memo)
        except client.ClientError as error:
            status = error.http_status or error.ocpi_status or "unreachable"
            raise SendFailed(str(error), status=str(status)) from error
        return "200"

    def settle(self, row: Push, *, started: datetime, sent_at: datetime) -> None:
        # Everything queued for the same object up to now is covered by this PUT.
        self.pending().filter(_same_target(row), id__gt=row.pk, created_at__lte=started).update(
            state=Push.State.SKIPPED, last_status="superseded", sent_at=sent_at
        )


def deliver(*, party_id: int, now: datetime | None = None, limit: int = 500) -> Delivery:
    """Send this party's pending pushes in order, one deliverer per party at a time, retrying
    a failure with backoff and handing a long backlog to a fresh task (partners.outbox)."""
    return PartyPushes(party_id).deliver(now=now, limit=limit)


def retry_now(*, push_ids: list[int]) -> int:
    """Admin action: make failed or given-up pushes due again."""
    return Push.objects.filter(
        pk__in=push_ids, state__in=[Push.State.PENDING, Push.State.GAVE_UP]
    ).update(state=Push.State.PENDING, next_attempt_at=None)
