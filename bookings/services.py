"""Every write to a booking: one function per transition or change, each writing its audit row
in the same transaction (`_transition` / `_audit`). Views, OCPI, admin and tasks call these.

Rules that need the clock or relations live here (`check_slot`). The two no-overlap rules are
the database's exclusion constraints (one EVSE's blocking bookings; one token's blocking
bookings), whose violations become SlotUnavailable.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg.errors
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from chargers.models import BOOKING_STATES
from config.celery import enqueue_on_commit
from locations.models import EVSE, BookingPolicy, ChargePoint, Connector, Location
from locations.selectors import (
    evse_at_location,
    evses_of_location,
    location_get_ci,
    policy_for,
    policy_terms,
    published_location_exists,
    tariff_ids_at,
)

from . import billing
from . import exceptions as exc
from .availability import Interval, grid_ceil, session_busy
from .models import (
    OPEN_STATUSES,
    REBOOK_CODE,
    Booking,
    BookingRequest,
    BookingToken,
    BookingTransition,
    CanceledReason,
    ChargerReservation,
    Driver,
    DriverToken,
    RequestStatus,
    Role,
    Status,
    TokenType,
    tstzrange,
)
from .selectors import (
    Criteria,
    _resolve_ocpi_location,
    blocked_time,
    booking_rebooked_as,
    bookings_on_charger,
    evse_choose,
    evse_unbookable_reason,
    opening_hours_read,
    rules_for,
    running_session_starts,
    slot_refusal,
    slot_taken,
)
from .selectors import local_moment as _fmt
from .signals import booking_audited
from .tasks import cancel_reservation_task, reserve_now_task

ActorType = BookingTransition.ActorType

# Legal transitions (OCPI ReservationStatus; digest 4.3.1 recommended state machine).
ALLOWED: dict[str | None, frozenset[str]] = {
    None: frozenset({Status.PENDING, Status.RESERVED, Status.REJECTED, Status.FAILED}),
    Status.PENDING: frozenset({Status.RESERVED, Status.REJECTED, Status.FAILED, Status.CANCELED}),
    Status.RESERVED: frozenset({Status.CANCELED, Status.FULFILLED, Status.NO_SHOW}),
}

PAST_GRACE = timedelta(minutes=1)  # a form submitted a moment after its slot began still counts
LOCK_TIMEOUT_SECONDS = 5  # the longest a write waits for another one's lock before giving up

# The exclusion constraints behind the two no-overlap rules (models.Booking, BookingToken).
EVSE_NO_OVERLAP = "booking_no_overlap_per_evse"
TOKEN_NO_OVERLAP = "bookingtoken_no_overlap"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who causes a change: staff user, eMSP party, charger or the system (sweeps)."""

    type: str
    user: Any = None
    country_code: str = ""
    party_id: str = ""
    label: str = ""

    @classmethod
    def staff(cls, user) -> Actor:
        return cls(ActorType.STAFF, user=user, label=user.get_username())

    @classmethod
    def emsp(cls, country_code: str, party_id: str) -> Actor:
        cc, pid = country_code.upper(), party_id.upper()
        return cls(ActorType.EMSP, country_code=cc, party_id=pid, label=f"{cc}*{pid}")

    @classmethod
    def api_client(cls, label: str) -> Actor:
        """A client of the operator REST API (the api app); `label` names it in the audit."""
        return cls(ActorType.API, label=label)

    @classmethod
    def charger(cls, identity: str) -> Actor:
        return cls(ActorType.CHARGER, label=identity)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorType.SYSTEM, label=label)

    @property
    def is_emsp(self) -> bool:
        return self.type == ActorType.EMSP

    @property
    def bound_by_terms(self) -> bool:
        """Whether the booking terms (deadlines, change_not_allowed) bind this actor without
        exception: eMSPs and API clients book for drivers, as outsiders to the site."""
        return self.type in (ActorType.EMSP, ActorType.API)

    @property
    def role(self) -> str:
        return Role.EMSP if self.is_emsp else Role.CPO


@dataclass(frozen=True)
class TokenData:
    """A token that may redeem a booking (OCPI BookingToken)."""

    country_code: str
    party_id: str
    uid: str
    type: str
    contract_id: str

    def as_dict(self) -> dict[str, str]:
        return {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "uid": self.uid,
            "type": self.type,
            "contract_id": self.contract_id,
        }


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def _audit_row(
    booking: Booking,
    *,
    event: str,
    from_status: str,
    actor: Actor,
    now: datetime,
    code: str = "",
    reason: str = "",
    details: Mapping[str, Any] | None = None,
) -> BookingTransition:
    """The unsaved audit row for a change of `booking` (now in its new state)."""
    return BookingTransition(
        booking=booking,
        event=event,
        from_status=from_status or "",
        to_status=booking.status,
        at=now,
        actor_type=actor.type,
        actor_user=actor.user,
        actor_label=actor.label[:120],
        code=code,
        reason=reason,
        details=dict(details or {}),
    )


def _audit(booking: Booking, **row: Any) -> BookingTransition:
    audit = _audit_row(booking, **row)
    audit.save()
    booking_audited.send(sender=Booking, booking_ids=[booking.pk])
    return audit


def _transition(
    booking: Booking,
    *,
    to: str,
    actor: Actor,
    now: datetime,
    code: str = "",
    reason: str = "",
    details: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Booking:
    """Move a locked booking to `to`, saving `fields` with it and writing the audit row.

    Raises InvalidTransition when the state machine does not allow it.
    """
    current = booking.status
    if to not in ALLOWED.get(current, frozenset()):
        raise exc.InvalidTransition(
            f"A {Status(current).label.lower()} booking cannot become {Status(to).label.lower()}.",
            from_status=current,
            to_status=to,
        )
    booking.status = to
    for name, value in fields.items():
        setattr(booking, name, value)
    booking.save(update_fields=["status", "last_updated", *fields])
    _audit(
        booking,
        event=BookingTransition.Event.STATUS,
        from_status=current,
        actor=actor,
        now=now,
        code=code,
        reason=reason,
        details=details,
    )
    return booking


def _lock(booking: Booking | int) -> Booking:
    pk = booking.pk if isinstance(booking, Booking) else booking
    # Lock first, then load with the joins. A locking query with an outer join re-checks a row
    # that a concurrent move updated against the old EVSE row, and PostgreSQL then returns the
    # booking with NULLs for the EVSE (found by tests/bookings/test_concurrency.py).
    Booking.objects.select_for_update().filter(pk=pk).values_list("pk", flat=True).get()
    return Booking.objects.select_related("evse__charge_point__location", "location").get(pk=pk)


def check_slot(
    *,
    evse: EVSE,
    start: datetime,
    end: datetime,
    now: datetime,
    location: Location | None = None,
    exclude_booking_id: int | None = None,
    check_overlap: bool = True,
) -> None:
    """Check every booking rule for [start, end) on evse; return quietly when it may be booked.

    With check_overlap=False the caller leaves the overlap with other bookings to the exclusion
    constraint its write meets (booking_create, booking_change), which gives the same message.
    The token rule is always left to its constraint.

    Raises InvalidRequest, InThePast, TooLittleNotice, BeyondHorizon, TooShort, TooLong,
    MisalignedSlot, NotBookable, OutsideOpeningHours, SlotUnavailable.
    """
    location = location or evse.charge_point.location
    _check_times(start, end)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    policy = policy_for(evse, location)
    rules = rules_for(policy)
    tz = location.zone
    if start < now - PAST_GRACE:
        raise exc.InThePast(f"{_fmt(start, location)} is in the past.")
    if start < now + rules.min_notice - PAST_GRACE:
        raise exc.TooLittleNotice(
            f"Bookings need {policy.min_notice_minutes} minutes' notice; the earliest start is "
            f"{_fmt(grid_ceil(now + rules.min_notice, rules.step, tz), location)}."
        )
    if end > now + rules.horizon:
        raise exc.BeyondHorizon(
            f"Bookings open {policy.horizon_days} days ahead; this ends after "
            f"{_fmt(now + rules.horizon, location)}."
        )
    # The location came without its hours (with the EVSE, or locked with the booking): one small
    # read of them (opening_hours_read) instead of the related managers' two queries.
    refusal = slot_refusal(
        evse=evse, start=start, end=end, location=location, rules=rules,
        hours=opening_hours_read(location),
    )  # fmt: skip
    if refusal is not None:
        raise refusal
    started = running_session_starts(evse_ids=[evse.pk]).get(evse.pk)
    if started is not None:
        busy = session_busy(started, now=now, rules=rules, tz=tz)
        if start < busy.end:
            raise exc.SlotUnavailable(
                f"{evse} is in use by a charging session; the earliest start is "
                f"{_fmt(busy.end, location)}.",
                code="evse_in_use",
            )
    if check_overlap:
        blocked = blocked_time(start, end, rules)
        clash = (
            Booking.objects.blocking()
            .of_evse(evse.pk)
            .filter(blocked_period__overlap=(blocked.start, blocked.end))
        )
        if exclude_booking_id is not None:
            clash = clash.exclude(pk=exclude_booking_id)
        if clash.exists():
            raise _slot_taken(evse, start, location, policy)


def _token_taken() -> exc.SlotUnavailable:
    return exc.SlotUnavailable(
        "This driver's token already holds a booking at that time.", code="token_overlap"
    )


def _slot_taken(
    evse: EVSE, start: datetime, location: Location, policy: BookingPolicy
) -> exc.SlotUnavailable:
    return slot_taken(evse, start, location, policy.buffer_minutes)


@contextmanager
def _conflicts_refused(taken: Callable[[], exc.SlotUnavailable]) -> Iterator[None]:
    """Turn the refusals of the two no-overlap constraints inside the block into SlotUnavailable:
    `taken()` for the EVSE's, the token's own message for a token's.

    Use it directly inside an atomic block (every service is one): the error leaves that block,
    which rolls the transaction or its savepoint back.
    """
    try:
        yield
    except (IntegrityError, OperationalError) as error:
        cause = error.__cause__
        constraint = getattr(getattr(cause, "diag", None), "constraint_name", None)
        if constraint == TOKEN_NO_OVERLAP:
            raise _token_taken() from error
        if constraint == EVSE_NO_OVERLAP:
            raise taken() from error
        if isinstance(cause, psycopg.errors.DeadlockDetected):
            # Concurrent inserts into one range can deadlock inside the exclusion check, and
            # PostgreSQL aborts one of them: for its caller the slot went to someone else.
            raise exc.SlotUnavailable(
                "Someone else booked that time a moment ago. Pick another slot."
            ) from error
        if isinstance(cause, psycopg.errors.LockNotAvailable):
            raise _busy() from error
        raise


def _busy() -> exc.Busy:
    return exc.Busy("Another change to this booking is in progress; send the request again.")


def bound_lock_waits(seconds: float = LOCK_TIMEOUT_SECONDS) -> None:
    """From here to the end of the transaction, wait at most `seconds` for any lock (a row, an
    advisory lock, a concurrent insert into an exclusion constraint); a longer wait fails with
    the database's lock-timeout error instead of hanging the caller."""
    if not connection.in_atomic_block:
        raise RuntimeError("bound_lock_waits() needs a transaction (an atomic block).")
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(seconds * 1000)}ms"])


def advisory_lock(key: str) -> None:
    """Take a transaction-level lock on `key` with bounded lock waits (bound_lock_waits).
    Raises Busy when the lock stays taken for longer than LOCK_TIMEOUT_SECONDS."""
    bound_lock_waits()
    with connection.cursor() as cursor:
        try:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
        except OperationalError as error:
            if isinstance(error.__cause__, psycopg.errors.LockNotAvailable):
                raise _busy() from error
            raise


def _connector_for(evse: EVSE, connector_id: str | None) -> Connector | None:
    if not connector_id:
        return None
    for c in evse.connector_list():
        if c.connector_id == connector_id:
            return c
    raise exc.UnknownEVSE(f"EVSE {evse.uid} has no connector {connector_id!r}.")


def _new_authorization_reference() -> str:
    return secrets.token_hex(12).upper()


def check_token_owners(actor: Actor, tokens: Sequence[TokenData]) -> None:
    """An eMSP books with its own tokens only (OCPI country code and party id are CiStrings).
    Raises InvalidRequest naming the first token of another party."""
    if not actor.is_emsp:
        return
    for t in tokens:
        if (t.country_code.upper(), t.party_id.upper()) != (actor.country_code, actor.party_id):
            raise exc.InvalidRequest(
                f"Token {t.uid!r} belongs to {t.country_code}*{t.party_id}: an eMSP books with "
                f"its own tokens ({actor.country_code}*{actor.party_id}) only.",
                code="foreign_token",
            )


def _insert(
    booking: Booking,
    *,
    tokens: Sequence[TokenData],
    actor: Actor,
    now: datetime,
    taken: Callable[[], exc.SlotUnavailable],
    code: str = "",
    reason: str = "",
    details: Mapping[str, Any] | None = None,
) -> Booking:
    """Save a new booking with its tokens and its CREATED audit row, inside the caller's atomic
    block. Raises SlotUnavailable when a no-overlap constraint refuses it (`taken()` for the
    EVSE's)."""
    check_token_owners(actor, tokens)
    booking.tariff_ids = tariff_ids_at(evse=booking.evse, location=booking.location)
    with _conflicts_refused(taken):
        booking.save()
        BookingToken.objects.bulk_create(
            BookingToken(booking=booking, **t.as_dict()) for t in tokens
        )
    _audit(
        booking, event=BookingTransition.Event.CREATED, from_status="", actor=actor, now=now,
        code=code, reason=reason, details=details,
    )  # fmt: skip
    return booking


@transaction.atomic
def booking_create(
    *,
    evse: EVSE,
    start: datetime,
    end: datetime,
    actor: Actor,
    driver: Driver | None = None,
    tokens: Sequence[TokenData] = (),
    connector_id: str | None = None,
    request_id: str = "",
    authorization_reference: str = "",
    power_required_kw: int | None = None,
    access_methods: Sequence[Mapping[str, str]] = (),
    notes: str = "",
    channel: str | None = None,
    code: str = "",
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Booking:
    """Book [start, end) on evse, decided at once: the booking is RESERVED or an error is raised.

    A driver's tokens become the booking's tokens when no tokens are given. `code` and
    `details` go into the CREATED audit row, beside the slot.
    Raises the errors of check_slot, and SlotUnavailable when the slot or one of the tokens is
    taken (also by a concurrent booking).
    """
    now = _now(now)
    location = evse.charge_point.location
    if driver is not None and not tokens:
        tokens = [
            TokenData(t.country_code, t.party_id, t.uid, t.type, t.contract_id)
            for t in driver.tokens.all()
        ]
    check_slot(evse=evse, start=start, end=end, now=now, location=location, check_overlap=False)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    policy = policy_for(evse, location)
    booking = Booking(
        location=location,
        evse=evse,
        connector=_connector_for(evse, connector_id),
        period=tstzrange(start, end),
        blocked_period=tstzrange(start, end + timedelta(minutes=policy.buffer_minutes)),
        status=Status.RESERVED,
        channel=channel or _CHANNEL_OF_ACTOR.get(actor.type, Booking.Channel.STAFF),
        created_by=actor.user,
        driver=driver,
        emsp_country_code=actor.country_code,
        emsp_party_id=actor.party_id,
        request_id=request_id,
        authorization_reference=authorization_reference or _new_authorization_reference(),
        power_required_kw=power_required_kw,
        terms=policy_terms(policy, evse=evse),
        access_methods=list(access_methods),
        notes=notes,
        charger_reservation=(
            ChargerReservation.NOT_SENT if evse.reservable else ChargerReservation.NOT_SUPPORTED
        ),
    )
    return _insert(
        booking, tokens=tokens, actor=actor, now=now, code=code,
        taken=partial(_slot_taken, evse, start, location, policy),
        details={"start": start.isoformat(), "end": end.isoformat(), "evse": evse.uid,
                 **(details or {})},
    )  # fmt: skip


_CHANNEL_OF_ACTOR = {ActorType.EMSP: Booking.Channel.OCPI, ActorType.API: Booking.Channel.API}


def _deadline_check(
    booking: Booking,
    *,
    actor: Actor,
    now: datetime,
    minutes_key: str,
    error: type[exc.BookingError],
    verb: str,
    override_reason: str,
) -> None:
    """Terms deadlines bind eMSPs and API clients; staff may pass them by giving a reason
    (recorded). The CPO's own automation (system sweeps, charger events) is not bound: a broken
    charger must be able to cancel a booking that starts in five minutes."""
    if booking.status != Status.RESERVED:
        return
    if not actor.bound_by_terms and actor.type != ActorType.STAFF:
        return
    if booking.channel == Booking.Channel.COMMAND:
        return  # an OCPI ReserveNow holds from now on: CancelReservation has no deadline
    minutes = int(booking.terms.get(minutes_key, 0) or 0)
    deadline = booking.period.lower - timedelta(minutes=minutes)
    if now <= deadline:
        return
    if actor.type == ActorType.STAFF and override_reason.strip():
        return
    message = (
        f"It is too late to {verb} this booking: {verb}s close {minutes} minutes before the "
        f"start ({_fmt(deadline, booking.location)})."
    )
    if actor.type == ActorType.STAFF:
        message += " Give a reason to override."
    raise error(message)


def _charger_follow_up(booking: Booking) -> None:
    """After commit, cancel (and for a move, place again) what a charger holds for the booking.
    The reservation sweep does the same from the database if this task is lost."""
    if booking.charger_reservation not in (
        ChargerReservation.NOT_SENT,
        ChargerReservation.NOT_SUPPORTED,
    ):
        enqueue_on_commit(cancel_reservation_task, booking_id=booking.pk)


@transaction.atomic
def booking_change(
    *,
    booking: Booking | int,
    actor: Actor,
    start: datetime | None = None,
    end: datetime | None = None,
    evse: EVSE | None = None,
    override_reason: str = "",
    now: datetime | None = None,
) -> Booking:
    """Move a booking in time and/or to another EVSE in one UPDATE: it never disappears and
    never double-books. eMSPs are bound by the terms' change deadline and change_not_allowed.

    Raises InvalidTransition, ChangeNotAllowed, TooLateToChange and the errors of check_slot.
    """
    now = _now(now)
    booking = _lock(booking)
    if booking.status not in OPEN_STATUSES:
        raise exc.InvalidTransition(
            f"A {booking.get_status_display().lower()} booking cannot be changed."
        )
    if actor.bound_by_terms and booking.terms.get("change_not_allowed"):
        raise exc.ChangeNotAllowed()
    _deadline_check(
        booking, actor=actor, now=now, minutes_key="change_until_minutes",
        error=exc.TooLateToChange, verb="change", override_reason=override_reason,
    )  # fmt: skip
    new_evse = evse or booking.evse
    new_start = start or booking.period.lower
    new_end = end or booking.period.upper
    _check_times(new_start, new_end)
    new_start, new_end = new_start.astimezone(UTC), new_end.astimezone(UTC)
    if new_evse.charge_point.location_id != booking.location_id:
        raise exc.UnknownEVSE("A booking can only move to an EVSE at the same location.")
    before = {
        "start": booking.period.lower.astimezone(UTC).isoformat(),
        "end": booking.period.upper.astimezone(UTC).isoformat(),
        "evse": booking.evse.uid,
    }
    after = {
        "start": new_start.astimezone(UTC).isoformat(),
        "end": new_end.astimezone(UTC).isoformat(),
        "evse": new_evse.uid,
    }
    if (new_evse.pk, new_start, new_end) == (
        booking.evse_id,
        booking.period.lower,
        booking.period.upper,
    ):
        return booking  # the same times given in another zone are no change
    check_slot(
        evse=new_evse, start=new_start, end=new_end, now=now, location=booking.location,
        exclude_booking_id=booking.pk, check_overlap=False,
    )  # fmt: skip
    policy = policy_for(new_evse, booking.location)
    if new_evse.pk != booking.evse_id:
        booking.tariff_ids = tariff_ids_at(evse=new_evse, location=booking.location)
    booking.evse = new_evse
    if booking.connector_id and booking.connector.evse_id != new_evse.pk:
        booking.connector = None
    booking.period = tstzrange(new_start, new_end)
    booking.blocked_period = tstzrange(
        new_start, new_end + timedelta(minutes=policy.buffer_minutes)
    )
    taken = partial(_slot_taken, new_evse, new_start, booking.location, policy)
    with _conflicts_refused(taken):
        booking.save(
            update_fields=[
                "evse",
                "connector",
                "period",
                "blocked_period",
                "tariff_ids",
                "last_updated",
            ]
        )
    _audit(
        booking, event=BookingTransition.Event.CHANGED, from_status=booking.status, actor=actor,
        now=now, reason=override_reason, details={"before": before, "after": after},
    )  # fmt: skip
    _charger_follow_up(booking)
    return booking


@transaction.atomic
def booking_cancel(
    *,
    booking: Booking | int,
    actor: Actor,
    reason: str = CanceledReason.UNKNOWN,
    note: str = "",
    override_reason: str = "",
    now: datetime | None = None,
) -> Booking:
    """Cancel a booking and free its slot. eMSPs are bound by the cancel deadline; staff pass it
    with an override reason. Raises InvalidTransition (already final), TooLateToCancel."""
    now = _now(now)
    booking = _lock(booking)
    if reason not in CanceledReason.values:
        raise exc.InvalidRequest(f"{reason!r} is not a cancellation reason.")
    if booking.status in ALLOWED and Status.CANCELED in ALLOWED[booking.status]:
        _deadline_check(
            booking, actor=actor, now=now, minutes_key="cancel_until_minutes",
            error=exc.TooLateToCancel, verb="cancel", override_reason=override_reason,
        )  # fmt: skip
    _charger_follow_up(booking)
    booking = _transition(
        booking,
        to=Status.CANCELED,
        actor=actor,
        now=now,
        code=reason,
        reason="; ".join(
            p for p in (note, override_reason and f"override: {override_reason}") if p
        ),
        canceled_reason=reason,
        canceled_by_role=actor.role,
        canceled_by=actor.user,
        canceled_at=now,
    )
    billing.cancellation_record(booking, by_driver_side=actor.bound_by_terms, at=now)
    return booking


def booking_cancel_undoable(booking: Booking) -> bool:
    """Whether a cancel of this booking may be undone by the desk (booking_rebook): only for a
    booking the site itself made. An eMSP or API client hears of a cancel at once and books
    again through its own channel."""
    return booking.channel == Booking.Channel.STAFF and booking.evse_id is not None


def booking_rebook_refusal(booking: Booking) -> str:
    """Why the desk may not undo this booking's cancel by booking it again, or "" if it may.

    Only a cancelled booking the site itself made (channel STAFF) and not re-booked already: an
    eMSP or API client was told of the cancel and books again through its own channel.
    """
    if booking.status != Status.CANCELED:
        return "Only a cancelled booking can be booked again."
    if not booking_cancel_undoable(booking):
        return (
            "This booking came from an eMSP or an API client, which has been told of the cancel: "
            "it books again through its own channel."
        )
    if booking_rebooked_as(booking=booking) is not None:
        return "This cancel has already been undone."
    return ""


@transaction.atomic
def booking_rebook(*, booking: Booking | int, actor: Actor, now: datetime | None = None) -> Booking:
    """Undo a cancel: book the same driver, tokens, EVSE and time again as a new booking (a
    cancelled booking stays cancelled: OCPI's CANCELED is final, and eMSPs were told of it).

    The new booking's CREATED audit row names the cancelled one (code REBOOK_CODE).
    Raises InvalidTransition when booking_rebook_refusal says no, and the errors of
    booking_create when the slot is no longer free.
    """
    old = _lock(booking)
    refusal = booking_rebook_refusal(old)
    if refusal:
        raise exc.InvalidTransition(refusal)
    return booking_create(
        evse=old.evse, start=old.period.lower, end=old.period.upper, actor=actor,
        driver=old.driver,
        tokens=[TokenData(t.country_code, t.party_id, t.uid, t.type, t.contract_id)
                for t in old.tokens.all()],
        connector_id=old.connector.connector_id if old.connector else None,
        power_required_kw=old.power_required_kw, access_methods=old.access_methods,
        notes=old.notes, channel=Booking.Channel.STAFF, code=REBOOK_CODE,
        details={"rebook_of": str(old.uid)}, now=now,
    )  # fmt: skip


@transaction.atomic
def booking_accept(*, booking: Booking | int, actor: Actor, now: datetime | None = None) -> Booking:
    """PENDING -> RESERVED. Raises InvalidTransition."""
    return _transition(_lock(booking), to=Status.RESERVED, actor=actor, now=_now(now))


@transaction.atomic
def booking_reject(
    *, booking: Booking | int, actor: Actor, code: str, reason: str, now: datetime | None = None
) -> Booking:
    """PENDING -> REJECTED (the CPO refuses). Raises InvalidTransition."""
    return _transition(
        _lock(booking), to=Status.REJECTED, actor=actor, now=_now(now), code=code, reason=reason
    )


@transaction.atomic
def booking_fail(
    *, booking: Booking | int, actor: Actor, code: str, reason: str, now: datetime | None = None
) -> Booking:
    """PENDING -> FAILED (processing errored or expired undecided). Raises InvalidTransition."""
    return _transition(
        _lock(booking), to=Status.FAILED, actor=actor, now=_now(now), code=code, reason=reason
    )


def fulfil_window(booking: Booking) -> Interval:
    """[start - early start, start + no-show timeout (or the end)]: when a session redeems it."""
    terms = booking.terms or {}
    early = timedelta(minutes=int(terms.get("early_start_time") or 0))
    if not terms.get("early_start_allowed", True):
        early = timedelta(0)
    noshow = terms.get("noshow_timeout")
    start = booking.period.lower
    late_end = (
        start + timedelta(minutes=int(noshow)) if noshow is not None else booking.period.upper
    )
    return Interval(start - early, late_end)


@transaction.atomic
def booking_fulfil(
    *, booking: Booking | int, actor: Actor, at: datetime, now: datetime | None = None
) -> Booking:
    """RESERVED -> FULFILLED: a session started with a booking token inside the window.
    Raises InvalidTransition, and InvalidRequest when `at` is outside the window."""
    booking = _lock(booking)
    window = fulfil_window(booking)
    if not (window.start <= at <= window.end):
        raise exc.InvalidRequest(
            "The session started outside the booking's window "
            f"({_fmt(window.start, booking.location)}–{_fmt(window.end, booking.location)})."
        )
    return _transition(booking, to=Status.FULFILLED, actor=actor, now=_now(now), fulfilled_at=at)


def bookings_redeemable(*, evse: EVSE, at: datetime) -> QuerySet[Booking]:
    """The RESERVED bookings on evse that may be near `at`: those whose fulfil window holds it
    are the ones a session starting then redeems (see booking_redeemable_at)."""
    return (
        Booking.objects.filter(status=Status.RESERVED, evse=evse)
        .filter(period__overlap=(at - timedelta(hours=24), at + timedelta(hours=24)))
        .order_by("period")
    )


def booking_redeemable_at(bookings: Iterable[Booking], at: datetime) -> Booking | None:
    """The first of these bookings whose fulfil window holds `at`."""
    for booking in bookings:
        window = fulfil_window(booking)
        if window.start <= at <= window.end:
            return booking
    return None


def booking_for_session(
    *, evse: EVSE, token_uid: str, at: datetime, token_country_code: str | None = None
) -> Booking | None:
    """The RESERVED booking on evse that a session started at `at` with token_uid redeems."""
    candidates = (
        bookings_redeemable(evse=evse, at=at).filter(tokens__uid__iexact=token_uid).distinct()
    )
    if token_country_code:
        candidates = candidates.filter(tokens__country_code=token_country_code)
    return booking_redeemable_at(candidates, at)


@transaction.atomic
def booking_check_in(
    *, booking: Booking | int, actor: Actor, now: datetime | None = None
) -> Booking:
    """Record that a reserved booking's driver has arrived (the desk's check-in); once only.
    Raises InvalidTransition unless the booking is reserved."""
    now = _now(now)
    booking = _lock(booking)
    if booking.status != Status.RESERVED:
        raise exc.InvalidTransition(
            f"A {booking.get_status_display().lower()} booking cannot be checked in."
        )
    if booking.checked_in_at is not None:
        return booking
    booking.checked_in_at = now
    booking.save(update_fields=["checked_in_at", "last_updated"])
    _audit(
        booking, event=BookingTransition.Event.CHECK_IN, from_status=booking.status, actor=actor,
        now=now,
    )  # fmt: skip
    return booking


@transaction.atomic
def booking_mark_no_show(
    *, booking: Booking | int, actor: Actor | None = None, now: datetime | None = None
) -> Booking:
    """RESERVED -> NO_SHOW once the window closed without a session; staff may say so from the
    booked start on (they see the bay empty). Raises InvalidTransition, InvalidRequest while
    the driver may still come."""
    now = _now(now)
    booking = _lock(booking)
    if booking.status == Status.RESERVED:
        staff = actor is not None and actor.type == ActorType.STAFF
        if staff and now < booking.period.lower:
            raise exc.InvalidRequest(
                "The booking has not started yet: it can be marked a no-show from "
                f"{_fmt(booking.period.lower, booking.location)}."
            )
        if not staff and now <= fulfil_window(booking).end:
            raise exc.InvalidRequest("The driver may still arrive; it is not a no-show yet.")
    booking = _transition(
        booking, to=Status.NO_SHOW, actor=actor or Actor.system("no-show sweep"), now=now
    )
    billing.no_show_record(booking, at=now)
    return booking


@transaction.atomic
def booking_record_charger_state(
    *,
    booking: Booking | int,
    state: str | None,
    actor: Actor,
    detail: str = "",
    needs_attention: bool | None = None,
    now: datetime | None = None,
) -> Booking:
    """Record where the booking's hold at its charger stands (bookings.holds); state None
    keeps it and records `detail` in the audit trail. Raises InvalidRequest for a state a
    booking cannot show."""
    now = _now(now)
    if state is not None and state not in BOOKING_STATES:
        raise exc.InvalidRequest(f"{state!r} is not a charger reservation state.")
    booking = _lock(booking)
    previous = booking.charger_reservation
    state = previous if state is None else state
    fields = {"charger_reservation", "charger_reservation_detail", "charger_reservation_updated_at"}
    booking.charger_reservation = state
    booking.charger_reservation_detail = detail[:255]
    booking.charger_reservation_updated_at = now
    if needs_attention is not None:
        booking.needs_attention = needs_attention
        fields.add("needs_attention")
    booking.save(update_fields=[*fields, "last_updated"])
    if previous != state or detail:
        _audit(
            booking, event=BookingTransition.Event.CHARGER, from_status=booking.status,
            actor=actor, now=now, code=state, reason=detail,
            details={"from": previous, "to": state},
        )  # fmt: skip
    return booking


@dataclass(frozen=True)
class ChargerState:
    """One booking's new charger-side state, for booking_record_charger_states."""

    booking_id: int
    state: str
    actor: Actor
    detail: str = ""
    needs_attention: bool | None = None


@transaction.atomic
def booking_record_charger_states(
    *, updates: Sequence[ChargerState], now: datetime | None = None
) -> int:
    """Record many bookings' charger-side states in a few queries (a sweep's batch of
    ReserveNow replies), with the audit rows booking_record_charger_state would write."""
    now = _now(now)
    by_id = {u.booking_id: u for u in updates}
    bookings = list(
        Booking.objects.select_for_update(of=("self",)).filter(pk__in=list(by_id)).order_by("pk")
    )
    audits = []
    for booking in bookings:
        update = by_id[booking.pk]
        previous = booking.charger_reservation
        booking.charger_reservation = update.state
        booking.charger_reservation_detail = update.detail[:255]
        booking.charger_reservation_updated_at = now
        if update.needs_attention is not None:
            booking.needs_attention = update.needs_attention
        booking.last_updated = now
        if previous != update.state or update.detail:
            audits.append(_audit_row(
                booking, event=BookingTransition.Event.CHARGER, from_status=booking.status,
                actor=update.actor, now=now, code=update.state, reason=update.detail,
                details={"from": previous, "to": update.state},
            ))  # fmt: skip
    # One UPDATE per distinct outcome (a batch's are mostly alike), not bulk_update's CASEs.
    groups: dict[tuple, list[int]] = {}
    for booking in bookings:
        key = (booking.charger_reservation, booking.charger_reservation_detail,
               booking.needs_attention)  # fmt: skip
        groups.setdefault(key, []).append(booking.pk)
    for (state, detail, attention), pks in groups.items():
        Booking.objects.filter(pk__in=pks).update(
            charger_reservation=state, charger_reservation_detail=detail,
            charger_reservation_updated_at=now, needs_attention=attention, last_updated=now,
        )  # fmt: skip
    BookingTransition.objects.bulk_create(audits)
    if audits:
        booking_audited.send(sender=Booking, booking_ids=[a.booking_id for a in audits])
    return len(bookings)


# --- OCPI booking requests (two-layer model: Booking.status + one BookingRequest per request) ---


# --- OCPI booking requests (two-layer model: Booking.status + one BookingRequest per request) ---


@dataclass(frozen=True)
class RequestData:
    """What the engine needs of an OCPI BookingRequest (the OCPI app parses the JSON)."""

    request_id: str
    location_id: str
    start: datetime
    end: datetime
    authorization_reference: str
    evse_uid: str | None = None
    connector_id: str | None = None
    tokens: tuple[TokenData, ...] = ()
    power_required_kw: int | None = None
    canceled_reason: str | None = None
    criteria: Criteria = field(default_factory=Criteria)
    published_only: bool = False  # eMSPs see published locations only; others are unknown


@dataclass(frozen=True)
class RequestOutcome:
    """What became of a BookingRequest: the booking, and its tokens and requests as they now
    stand (the eMSP's answer shows them; a new booking's are the ones just written)."""

    booking: Booking
    tokens: Sequence[TokenData | BookingToken]
    requests: Sequence[BookingRequest]

    @classmethod
    def read(cls, booking: Booking) -> RequestOutcome:
        return cls(booking, list(booking.tokens.all()), list(booking.requests.all()))


def _decide(request: BookingRequest, status: str, now: datetime, error=None) -> None:
    request.request_status = status
    request.decided_at = now
    if error is not None:
        request.reason_code = error.code
        request.reason = error.message[:255]


def lock_request_id(*, country_code: str, party_id: str, request_id: str) -> None:
    """Make requests of one eMSP request_id take turns until the transaction ends. Raises Busy
    when another one holds it for longer than LOCK_TIMEOUT_SECONDS."""
    advisory_lock(f"booking-request:{country_code}:{party_id}:{request_id.lower()}")


@transaction.atomic
def booking_request_submit(
    *,
    actor: Actor,
    data: RequestData,
    payload: Mapping[str, Any],
    now: datetime | None = None,
) -> RequestOutcome:
    """Take an eMSP's BookingRequest: create, change or cancel the booking of its request_id,
    deciding at once, and record the request with its outcome.

    A refused new request yields a REJECTED booking; a refused change or cancel leaves the
    booking as it was with the request DECLINED. Resending the latest request unchanged
    returns the booking as it is (idempotent). Raises UnknownLocation, UnknownEVSE,
    InvalidRequest (malformed, or a cancel for an unknown request_id), Busy.
    """
    now = _now(now)
    payload = dict(payload)
    cc, pid = actor.country_code, actor.party_id
    lock_request_id(country_code=cc, party_id=pid, request_id=data.request_id)
    existing_id = _booking_id_of_request(country_code=cc, party_id=pid, request_id=data.request_id)
    if existing_id is None:
        if data.canceled_reason:
            raise exc.InvalidRequest(
                f"There is no booking with request_id {data.request_id!r} to cancel.",
                code="unknown_booking",
            )
        return _request_new(actor=actor, data=data, payload=payload, now=now)
    booking = _lock(existing_id)
    last = booking.requests.order_by("-received_at", "-id").first()
    if last is not None and last.payload == payload:
        return RequestOutcome.read(booking)
    if (
        data.published_only
        and not data.canceled_reason
        and not published_location_exists(location_id=data.location_id)
    ):
        raise exc.UnknownLocation(f"There is no location {data.location_id!r}.")
    booking = _request_on_existing(booking, actor=actor, data=data, payload=payload, now=now)
    return RequestOutcome.read(booking)


# `request_id <> ''` is written into the statement, not passed as a parameter: it is the
# predicate of the partial unique index booking_unique_request_id_per_party, and only a literal
# lets the prepared statement's generic plan use that index (a parameter made it a table scan).
_BOOKING_OF_REQUEST_SQL = (
    "SELECT id FROM bookings_booking WHERE emsp_country_code = %s AND emsp_party_id = %s"
    " AND lower(request_id) = lower(%s) AND request_id <> ''"
)


def _booking_id_of_request(*, country_code: str, party_id: str, request_id: str) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(_BOOKING_OF_REQUEST_SQL, [country_code, party_id, request_id])
        row = cursor.fetchone()
    return row[0] if row else None


def _check_times(start: datetime | None, end: datetime | None) -> None:
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise exc.InvalidRequest("Give the start and the end as date and time.")
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise exc.InvalidRequest("Start and end must be times with a time zone.")
    # Compare as instants: Python compares and subtracts two times of one zone by wall clock,
    # which is wrong across a DST change (01:30 CET -> 03:30 CEST is one hour, not two).
    if end.astimezone(UTC) <= start.astimezone(UTC):
        raise exc.InvalidRequest("The end must be after the start.")


def evse_assign(
    *, location: Location, start: datetime, end: datetime, now: datetime, criteria: Criteria
) -> EVSE:
    """The auto-assigned EVSE for [start, end), or the refusal that explains why there is none.
    Raises NoEVSEAvailable and the errors of check_slot.

    evse_choose finds no EVSE either because every fitting EVSE is taken (NoEVSEAvailable) or
    because the slot breaks a rule on all of them (in the past, too long, closed...): then the
    person reads that rule, not "no EVSE free".
    """
    evse = evse_choose(location=location, start=start, end=end, now=now, criteria=criteria)
    if evse is not None:
        return evse
    candidates = [e for e in evses_of_location(location=location) if criteria.matches(e)]
    if not candidates:
        raise exc.NoEVSEAvailable(f"No EVSE at {location.name} matches the requested criteria.")
    refusals = []
    for candidate in candidates:
        try:
            check_slot(evse=candidate, start=start, end=end, now=now, location=location)
        except exc.BookingError as refusal:
            refusals.append(refusal)
        else:
            return candidate  # passes every rule (e.g. inside the grace for "now"): take it
    if any(isinstance(r, exc.SlotUnavailable) for r in refusals):
        raise exc.NoEVSEAvailable(
            f"No EVSE that fits is free at {location.name} for {_fmt(start, location)}–"
            f"{end.astimezone(location.zone):%H:%M}."
        )
    raise refusals[0]


def _request_targets(data: RequestData) -> tuple[Location, EVSE | None]:
    """The request's location (by OCPI id, a CiString) and EVSE, if it names one; the EVSE with
    its charge point, location and both policies in one query. Raises UnknownLocation,
    UnknownEVSE."""
    evse = None
    if data.evse_uid:
        with contextlib.suppress(EVSE.DoesNotExist):
            evse = evse_at_location(location_id=data.location_id, evse_uid=data.evse_uid)
    if evse is not None:
        location = evse.charge_point.location
    else:
        # An OCPI location_id is the location's OCPI id, never its primary key ("12" is an id).
        try:
            location = location_get_ci(ocpi_id=data.location_id)
        except Location.DoesNotExist:
            location = None
    if location is None or (data.published_only and not location.publish):
        raise exc.UnknownLocation(f"There is no location {data.location_id!r}.")
    if data.evse_uid and evse is None:
        raise exc.UnknownEVSE(f"There is no EVSE {data.evse_uid!r} at location {location.ocpi_id}.")
    return location, evse


def _request_new(
    *, actor: Actor, data: RequestData, payload: dict[str, Any], now: datetime
) -> RequestOutcome:
    _check_times(data.start, data.end)
    location, evse = _request_targets(data)
    request = BookingRequest(payload=payload, received_at=now)
    try:
        if evse is None:
            evse = evse_assign(
                location=location, start=data.start, end=data.end, now=now, criteria=data.criteria
            )
        booking = booking_create(
            evse=evse,
            start=data.start,
            end=data.end,
            actor=actor,
            tokens=data.tokens,
            connector_id=data.connector_id,
            request_id=data.request_id,
            authorization_reference=data.authorization_reference,
            power_required_kw=data.power_required_kw,
            now=now,
        )
    except (exc.UnknownEVSE, exc.InvalidRequest, exc.Busy):
        raise
    except exc.BookingError as refusal:
        _decide(request, RequestStatus.DECLINED, now, refusal)
        booking = _unaccepted(
            Status.REJECTED, refusal, actor=actor, data=data, location=location, evse=evse,
            now=now,
        )  # fmt: skip
    except Exception:
        # Anything else that broke while deciding: the eMSP gets a FAILED booking with a FAILED
        # request (digest 4.3.3) instead of an error and nothing to show, and the operator a
        # traceback. booking_create's savepoint is rolled back; if the transaction itself is
        # broken, recording fails too and the whole request fails with nothing written.
        logger.exception(
            "BookingRequest %s of %s*%s failed", data.request_id, actor.country_code,
            actor.party_id,
        )  # fmt: skip
        error = exc.BookingError(
            "Processing this request failed on our side; send it again with a new request_id.",
            code="processing_failed",
        )
        _decide(request, RequestStatus.FAILED, now, error)
        booking = _unaccepted(
            Status.FAILED, error, actor=actor, data=data, location=location, evse=evse, now=now
        )
    else:
        _decide(request, RequestStatus.ACCEPTED, now)
    request.booking = booking
    request.save()
    return RequestOutcome(booking, data.tokens, [request])


def _unaccepted(
    status: str,
    error: exc.BookingError,
    *,
    actor: Actor,
    data: RequestData,
    location: Location,
    evse: EVSE | None,
    now: datetime,
) -> Booking:
    """Record a new request's booking that was not made, REJECTED (refused) or FAILED."""
    policy = policy_for(evse, location) if evse is not None else None
    booking = Booking(
        location=location,
        evse=evse,
        period=tstzrange(data.start, data.end),
        blocked_period=tstzrange(data.start, data.end),
        status=status,
        channel=Booking.Channel.OCPI,
        emsp_country_code=actor.country_code,
        emsp_party_id=actor.party_id,
        request_id=data.request_id,
        authorization_reference=data.authorization_reference,
        power_required_kw=data.power_required_kw,
        terms=policy_terms(policy, evse=evse) if policy else {},
    )
    return _insert(
        booking, tokens=data.tokens, actor=actor, now=now, taken=lambda: error,
        code=error.code, reason=error.message,
    )  # fmt: skip


def _request_on_existing(
    booking: Booking, *, actor: Actor, data: RequestData, payload: dict[str, Any], now: datetime
) -> Booking:
    request = BookingRequest(
        booking=booking, request_status=RequestStatus.PENDING, payload=payload, received_at=now
    )
    try:
        if booking.status not in OPEN_STATUSES:
            raise exc.InvalidTransition(
                f"The booking is {booking.get_status_display().lower()}; it can no longer change."
            )
        if data.canceled_reason:
            booking_cancel(booking=booking, actor=actor, reason=data.canceled_reason, now=now)
        else:
            _request_change(booking, actor=actor, data=data, now=now)
    except exc.BookingError as refusal:
        _decide(request, RequestStatus.DECLINED, now, refusal)
        code, reason = refusal.code, refusal.message
    else:
        _decide(request, RequestStatus.ACCEPTED, now)
        code, reason = RequestStatus.ACCEPTED, ""
    request.save()
    booking = Booking.objects.get(pk=booking.pk)
    # The request history is part of the OCPI Booking: record it so it is pushed too.
    _audit(
        booking, event=BookingTransition.Event.REQUEST, from_status=booking.status, actor=actor,
        now=now, code=code, reason=reason,
    )  # fmt: skip
    Booking.objects.filter(pk=booking.pk).update(last_updated=now)
    booking.last_updated = now
    return booking


@transaction.atomic
def _request_change(booking: Booking, *, actor: Actor, data: RequestData, now: datetime) -> None:
    """Move the booking and replace its tokens as the request asks: both or neither."""
    if data.location_id.upper() != booking.location.ocpi_id.upper():  # CiString
        raise exc.InvalidRequest("A booking cannot move to another location.")
    evse = None
    if data.evse_uid and data.evse_uid != booking.evse.uid:
        try:  # .get(), as in _request_targets: uids are unique, nothing to order
            evse = (
                EVSE.objects.of_location(booking.location)
                .select_related("charge_point__location")
                .get(uid=data.evse_uid)
            )
        except EVSE.DoesNotExist:
            raise exc.UnknownEVSE(f"There is no EVSE {data.evse_uid!r} at this location.") from None
    booking_change(booking=booking, actor=actor, start=data.start, end=data.end, evse=evse, now=now)
    _replace_tokens(booking, data.tokens, actor=actor)


def _replace_tokens(booking: Booking, tokens: Sequence[TokenData], *, actor: Actor) -> None:
    check_token_owners(actor, tokens)
    current = {
        (t.country_code, t.party_id, t.uid, t.type, t.contract_id) for t in booking.tokens.all()
    }
    wanted = {(t.country_code, t.party_id, t.uid, t.type, t.contract_id) for t in tokens}
    if current == wanted:
        return
    with _conflicts_refused(_token_taken):
        booking.tokens.all().delete()
        BookingToken.objects.bulk_create(
            BookingToken(booking=booking, **t.as_dict()) for t in tokens
        )


@transaction.atomic
def booking_expire_undecided(
    *, booking: Booking | int, cutoff: datetime, now: datetime | None = None
) -> Booking:
    """Fail what stayed undecided since before `cutoff`: a PENDING booking becomes FAILED and
    its PENDING requests FAILED (a RESERVED booking keeps its state; only the request fails)."""
    now = _now(now)
    booking = _lock(booking)
    stale = booking.requests.filter(request_status=RequestStatus.PENDING, received_at__lt=cutoff)
    for request in stale:
        _decide(request, RequestStatus.FAILED, now, exc.BookingError(
            "The request was not decided in time.", code="expired"
        ))  # fmt: skip
        request.save(update_fields=["request_status", "decided_at", "reason_code", "reason"])
    if booking.status == Status.PENDING and booking.created_at < cutoff:
        return _transition(
            booking, to=Status.FAILED, actor=Actor.system("pending sweep"), now=now,
            code="expired", reason="The booking was not decided in time.",
        )  # fmt: skip
    if stale:
        _audit(
            booking, event=BookingTransition.Event.REQUEST, from_status=booking.status,
            actor=Actor.system("pending sweep"), now=now, code=RequestStatus.FAILED,
            reason="The request was not decided in time.",
        )  # fmt: skip
    return booking


@transaction.atomic
def booking_reserve_now(
    *,
    location: Location | str,
    until: datetime,
    actor: Actor,
    request_id: str,
    evse_uid: str | None = None,
    tokens: Sequence[TokenData] = (),
    authorization_reference: str = "",
    now: datetime | None = None,
) -> Booking:
    """Hold an EVSE from now until `until` for an immediate reservation (OCPI RESERVE_NOW).

    The slot grid, notice and minimum duration do not apply (it starts now); bookability, the
    maximum duration and the no-overlap rule do. Without evse_uid the first free EVSE is held.
    Raises UnknownLocation, UnknownEVSE, InvalidRequest, NotBookable, TooLong, SlotUnavailable,
    NoEVSEAvailable.
    """
    now = _now(now)
    check_token_owners(actor, tokens)
    location = _resolve_ocpi_location(location) if isinstance(location, str) else location
    if until <= now:
        raise exc.InvalidRequest("The reservation's expiry is in the past.")
    evses = list(
        EVSE.objects.of_location(location)
        .select_related("charge_point__location", "booking_policy")
        .order_by("charge_point__identity", "ocpp_evse_id", "id")
    )
    if evse_uid:
        evses = [e for e in evses if e.uid.lower() == evse_uid.lower()]
        if not evses:
            raise exc.UnknownEVSE(f"There is no EVSE {evse_uid!r} at location {location.ocpi_id}.")
    charging = running_session_starts(evse_ids=[e.pk for e in evses])
    for evse in evses:
        policy = policy_for(evse, location)
        try:
            reason = evse_unbookable_reason(evse)
            if reason:
                raise exc.NotBookable(reason)
            if evse.pk in charging:
                raise exc.SlotUnavailable(f"{evse} is in use by a charging session.")
            if until - now > timedelta(minutes=policy.max_duration_minutes):
                raise exc.TooLong(
                    f"A reservation here lasts at most {policy.max_duration_minutes} minutes."
                )
            booking = Booking(
                location=location,
                evse=evse,
                period=tstzrange(now, until),
                blocked_period=tstzrange(now, until + timedelta(minutes=policy.buffer_minutes)),
                status=Status.RESERVED,
                channel=Booking.Channel.COMMAND,
                emsp_country_code=actor.country_code,
                emsp_party_id=actor.party_id,
                request_id=request_id,
                authorization_reference=authorization_reference or _new_authorization_reference(),
                # Held until its expiry, not a slot's no-show timeout: the driver may come
                # any time before then (and is a no-show only once it has passed).
                terms={
                    k: v
                    for k, v in policy_terms(policy, evse=evse).items()
                    if k != "noshow_timeout"
                },
                charger_reservation=(
                    ChargerReservation.NOT_SENT
                    if evse.reservable
                    else ChargerReservation.NOT_SUPPORTED
                ),
            )
            # A savepoint per attempt: a lost race (the exclusion constraint refusing the
            # insert) aborts only this EVSE's insert, and the loop goes on to the next EVSE.
            with transaction.atomic():
                _insert(
                    booking, tokens=tokens, actor=actor, now=now,
                    taken=lambda evse=evse: exc.SlotUnavailable(
                        f"{evse} is booked before the reservation would end."
                    ),
                    details={"start": now.isoformat(), "end": until.isoformat(),
                             "evse": evse.uid, "reserve_now": True},
                )  # fmt: skip
        except exc.BookingError:
            if evse_uid:
                raise
            continue
        if evse.reservable:
            # It starts now: hold the charger at once rather than at the next sweep.
            enqueue_on_commit(reserve_now_task, booking_id=booking.pk)
        return booking
    raise exc.NoEVSEAvailable("No EVSE at this location is free until the reservation's expiry.")


@transaction.atomic
def driver_create(
    *,
    name: str,
    email: str = "",
    phone: str = "",
    license_plate: str = "",
    tokens: Sequence[TokenData] = (),
) -> Driver:
    """Register a driver with their tokens. Raises django ValidationError (e.g. a token that
    another driver already holds)."""
    driver = Driver(name=name, email=email, phone=phone, license_plate=license_plate)
    driver.full_clean()
    driver.save()
    for token in tokens:
        row = DriverToken(driver=driver, **token.as_dict())
        row.full_clean()
        row.save()
    return driver


@dataclass(frozen=True)
class WalkIn:
    """A driver who is not in the system yet, as the desk takes them down: a name, and a plate
    and/or a phone number; the uid of their charging card if they have one."""

    name: str
    license_plate: str = ""
    phone: str = ""
    token_uid: str = ""


@transaction.atomic
def booking_create_for_walk_in(
    *,
    walk_in: WalkIn,
    evse: EVSE,
    start: datetime,
    end: datetime,
    actor: Actor,
    notes: str = "",
    now: datetime | None = None,
) -> Booking:
    """Book for a walk-in driver: the driver (driver_create, with their card as one of our RFID
    tokens) and the booking (booking_create) are written together or not at all.

    Raises django ValidationError from driver_create (e.g. a card another driver holds), and
    the errors of booking_create.
    """
    uid = walk_in.token_uid.strip()
    tokens = (
        [TokenData(settings.OCPI_COUNTRY_CODE, settings.OCPI_PARTY_ID, uid, TokenType.RFID, uid)]
        if uid
        else []
    )
    driver = driver_create(
        name=walk_in.name.strip(), phone=walk_in.phone.strip(),
        license_plate=walk_in.license_plate.strip(), tokens=tokens,
    )  # fmt: skip
    return booking_create(
        evse=evse, start=start, end=end, actor=actor, driver=driver, notes=notes, now=now
    )


# --- a charger out of order ---


@dataclass(frozen=True)
class OutOfOrderOutcome:
    """What charger_out_of_order did with each booking: moved (to which EVSE), cancelled, or
    left as it was (why)."""

    moved: list[tuple[Booking, EVSE, EVSE]] = field(default_factory=list)  # booking, from, to
    canceled: list[Booking] = field(default_factory=list)
    untouched: list[tuple[Booking, str]] = field(default_factory=list)


def charger_out_of_order(
    *,
    charge_point: ChargePoint,
    actor: Actor,
    reason: str,
    until: datetime,
    move: bool = True,
    now: datetime | None = None,
) -> OutOfOrderOutcome:
    """A charge point is broken: each of its active bookings until `until` is moved to a free
    EVSE of the same location with the same kind of current (AC or DC) at the same time, or,
    when none is free (or `move` is false), cancelled with BROKEN_CHARGER. `reason` is recorded
    on every change (and passes the change and cancel deadlines for staff). Each booking is
    changed in its own transaction by booking_change / booking_cancel, so every eMSP and API
    client hears of it through the usual pushes and webhooks, and one refusal stops nothing."""
    now = _now(now)
    if not reason.strip():
        raise exc.InvalidRequest("Give a reason: it is recorded on every booking changed.")
    outcome = OutOfOrderOutcome()
    broken = set(charge_point.evses.values_list("pk", flat=True))
    for booking in bookings_on_charger(charge_point=charge_point, now=now, until=until):
        source = booking.evse
        target = None
        if move:
            dc = any(c.is_dc for c in source.connector_list())
            target = evse_choose(
                location=booking.location, start=booking.period.lower, end=booking.period.upper,
                now=now, criteria=Criteria(power_type="DC" if dc else "AC"),
                exclude_evses=broken,
            )  # fmt: skip
        try:
            if target is not None:
                try:
                    booking_change(booking=booking, actor=actor, evse=target,
                                   override_reason=reason, now=now)  # fmt: skip
                    outcome.moved.append((booking, source, target))
                    continue
                except exc.BookingError:
                    pass  # taken meanwhile, or the move breaks a rule: cancel instead
            booking_cancel(booking=booking, actor=actor, reason=CanceledReason.BROKEN_CHARGER,
                           note=reason, override_reason=reason, now=now)  # fmt: skip
            outcome.canceled.append(booking)
        except exc.BookingError as refusal:
            outcome.untouched.append((booking, refusal.message))
    return outcome
