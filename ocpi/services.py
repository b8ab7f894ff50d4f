"""Writes of the OCPI app: parties and the credentials handshake (both directions), and the
eMSP Tokens we receive. Booking writes go through bookings.services."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from . import client
from . import responses as r
from .exceptions import NotRegistered, OcpiError
from .models import Party, Token, token_digest

logger = logging.getLogger(__name__)

SUPPORTED_VERSIONS = ("2.3.0",)


def new_token() -> str:
    # 43 URL-safe characters: inside OCPI's printable, non-whitespace ASCII and string(64).
    return secrets.token_urlsafe(32)


def public_url(name: str, **kwargs: Any) -> str:
    return settings.PUBLIC_BASE_URL + reverse(name, kwargs=kwargs or None)


def versions_url() -> str:
    return public_url("ocpi:versions")


def our_credentials(token: str) -> dict[str, Any]:
    """Our Credentials object carrying the token the party uses to call us."""
    return {
        "token": token,
        "url": versions_url(),
        "roles": [
            {
                "role": "CPO",
                "business_details": {"name": getattr(settings, "OCPI_BUSINESS_NAME", "Chargebook")},
                "party_id": settings.OCPI_PARTY_ID,
                "country_code": settings.OCPI_COUNTRY_CODE,
            }
        ],
    }


@transaction.atomic
def party_add(*, country_code: str, party_id: str, role: str = Party.Role.EMSP, name: str = ""):
    """Register a party (or re-issue its token A if not registered yet); returns (party, token A).

    Raises OcpiError if the party is already registered.
    """
    cc, pid = country_code.upper(), party_id.upper()
    party, _ = Party.objects.select_for_update().get_or_create(
        country_code=cc, party_id=pid, defaults={"role": role, "name": name}
    )
    if party.state == Party.State.REGISTERED:
        raise OcpiError(r.CLIENT_ERROR, f"{cc}*{pid} is already registered.")
    token_a = new_token()
    party.token_a_digest = token_digest(token_a)
    party.state = Party.State.PENDING
    party.role = role
    if name:
        party.name = name
    party.save()
    return party, token_a


def _unusable(what: str, url: str, error: client.ClientError) -> OcpiError:
    """The same words whatever went wrong: the party learns nothing about what answers where."""
    logger.warning("Could not get %s from %s: %s", what, url, error)
    return OcpiError(r.UNABLE_TO_USE_CLIENT_API, f"Could not get your {what} from {url}: "
                     f"{client.UNUSABLE}.")  # fmt: skip


def discover(versions_url: str, token: str, *, raw: bool = False) -> tuple[str, list[dict]]:
    """GET their versions and the details of the highest mutual version: (version, endpoints).

    Raises OcpiError 3001 (unreachable), 3002 (no mutual version), 3003 (no endpoints).
    """
    try:
        versions = client.call("GET", versions_url, token=token, raw_token=raw).data
    except client.ClientError as error:
        raise _unusable("versions", versions_url, error) from error
    if not isinstance(versions, list):
        # Whatever answered is not an OCPI versions endpoint: saying so would tell the caller
        # that something listens there.
        raise _unusable("versions", versions_url, client.ClientError("not a versions list"))
    offered = {str(v.get("version")): v.get("url") for v in versions if isinstance(v, dict)}
    mutual = [v for v in SUPPORTED_VERSIONS if offered.get(v)]
    if not mutual:
        raise OcpiError(
            r.UNSUPPORTED_VERSION, f"No mutual version: you offer {sorted(offered)}, we 2.3.0."
        )
    version = max(mutual, key=lambda v: tuple(int(p) for p in v.split(".")))
    try:
        details = client.call("GET", offered[version], token=token, raw_token=raw).data
    except client.ClientError as error:
        raise _unusable(f"{version} details", offered[version], error) from error
    endpoints = details.get("endpoints") if isinstance(details, dict) else None
    if not isinstance(endpoints, list) or not endpoints:
        raise OcpiError(r.NO_MATCHING_ENDPOINTS, "Your version details list no endpoints.")
    clean = [
        {
            "identifier": str(e.get("identifier")),
            "role": str(e.get("role")),
            "url": str(e.get("url")),
        }
        for e in endpoints
        if isinstance(e, dict) and e.get("identifier") and e.get("url")
    ]
    if not any(e["identifier"].lower() == "credentials" for e in clean):
        raise OcpiError(
            r.NO_MATCHING_ENDPOINTS, "Your version details lack a credentials endpoint."
        )
    return version, clean


def _role_matches(party: Party, roles: list[Mapping[str, Any]]) -> bool:
    return any(
        str(role.get("country_code", "")).upper() == party.country_code
        and str(role.get("party_id", "")).upper() == party.party_id
        for role in roles
    )


def credentials_register(*, party: Party, credentials: Mapping[str, Any]) -> dict[str, Any]:
    """POST credentials: call them back with their token B, store their endpoints, issue token C
    (token A stops working). Raises NotRegistered (405) if already registered, OcpiError 3xxx."""
    if party.state == Party.State.REGISTERED:
        raise NotRegistered("Already registered: use PUT to update the credentials.")
    return _store_credentials(party=party, credentials=credentials)


def credentials_update(*, party: Party, credentials: Mapping[str, Any]) -> dict[str, Any]:
    """PUT credentials: fetch their endpoints again and rotate the token we issued."""
    if party.state != Party.State.REGISTERED:
        raise NotRegistered()
    return _store_credentials(party=party, credentials=credentials)


def _store_credentials(*, party: Party, credentials: Mapping[str, Any]) -> dict[str, Any]:
    roles = list(credentials["roles"])
    if not _role_matches(party, roles):
        raise OcpiError(
            r.INVALID_PARAMETERS,
            f"roles: none is {party.country_code}/{party.party_id}, the party this token is for.",
        )
    # The call back happens outside any transaction (no lock held across HTTP).
    version, endpoints = discover(
        credentials["url"], credentials["token"], raw=party.legacy_raw_token
    )
    token_c = new_token()
    with transaction.atomic():
        locked = Party.objects.select_for_update().get(pk=party.pk)
        locked.token_b = credentials["token"]
        locked.versions_url = credentials["url"]
        locked.version = version
        locked.endpoints = endpoints
        locked.roles = roles
        locked.token_a_digest = ""
        locked.token_c_digest = token_digest(token_c)
        locked.state = Party.State.REGISTERED
        locked.registered_at = locked.registered_at or timezone.now()
        locked.save()
    return our_credentials(token_c)


@transaction.atomic
def credentials_delete(*, party: Party) -> None:
    """DELETE credentials: the party's access ends and pushes to it stop."""
    locked = Party.objects.select_for_update().get(pk=party.pk)
    if locked.state != Party.State.REGISTERED:
        raise NotRegistered()
    locked.state = Party.State.UNREGISTERED
    locked.token_c_digest = ""
    locked.token_a_digest = ""
    locked.token_b = ""
    locked.save()


def register_with(*, versions_url: str, token_a: str) -> Party:
    """Our side of the handshake: we call their versions with their token A, POST our
    credentials with a fresh token for them, and keep the token they answer with.

    Raises OcpiError (3001/3002/3003) when they cannot be used.
    """
    version, endpoints = discover(versions_url, token_a)
    credentials_url = next(e["url"] for e in endpoints if e["identifier"].lower() == "credentials")
    ours = new_token()
    # They call us back with `ours` before answering, so the party must know it already.
    pending = Party.objects.create(
        country_code="", party_id=f"{secrets.randbelow(10**9)}"[:3], state=Party.State.PENDING,
        token_c_digest=token_digest(ours), versions_url=versions_url,
    )  # fmt: skip
    try:
        reply = client.call("POST", credentials_url, token=token_a, json=our_credentials(ours)).data
    except client.ClientError as error:
        pending.delete()
        raise _unusable("credentials", credentials_url, error) from error
    if not isinstance(reply, dict) or not reply.get("token") or not reply.get("roles"):
        pending.delete()
        raise OcpiError(r.UNABLE_TO_USE_CLIENT_API, "Their credentials reply lacks token or roles.")
    roles = [x for x in reply["roles"] if isinstance(x, dict)]
    main = next((x for x in roles if x.get("role") == "EMSP"), roles[0] if roles else {})
    cc, pid = str(main.get("country_code", "")).upper(), str(main.get("party_id", "")).upper()
    with transaction.atomic():
        party = Party.objects.select_for_update().filter(country_code=cc, party_id=pid).first()
        if party is None:
            party = pending
        else:
            pending.delete()
        party.country_code, party.party_id = cc, pid
        party.role = main.get("role") if main.get("role") in Party.Role.values else "OTHER"
        party.name = party.name or str((main.get("business_details") or {}).get("name", ""))[:100]
        party.token_b = str(reply["token"])
        party.token_c_digest = token_digest(ours)
        party.token_a_digest = ""
        party.versions_url = str(reply.get("url") or versions_url)
        party.version = version
        party.endpoints = endpoints
        party.roles = roles
        party.state = Party.State.REGISTERED
        party.registered_at = timezone.now()
        party.save()
    return party


# --- Tokens module (receiver) ---


def token_put(*, party: Party, data: Mapping[str, Any]) -> tuple[Token, bool]:
    """Create or replace the Token; returns (token, created)."""
    fields = {
        "owner": party,
        "contract_id": data["contract_id"],
        "visual_number": data.get("visual_number") or "",
        "issuer": data["issuer"],
        "group_id": data.get("group_id") or "",
        "valid": data["valid"],
        "whitelist": data["whitelist"],
        "language": data.get("language") or "",
        "default_profile_type": data.get("default_profile_type") or "",
        "energy_contract": data.get("energy_contract"),
        "last_updated": data["last_updated"],
    }
    with transaction.atomic():
        return Token.objects.update_or_create(
            country_code__iexact=data["country_code"],
            party_id__iexact=data["party_id"],
            uid__iexact=data["uid"],
            type=data["type"],
            defaults=fields,
            create_defaults={
                **fields,
                "country_code": data["country_code"],
                "party_id": data["party_id"],
                "uid": data["uid"],
                "type": data["type"],
            },
        )


@transaction.atomic
def token_patch(*, token: Token, data: Mapping[str, Any]) -> Token:
    """Apply a partial Token (PATCH); identity fields cannot change."""
    token = Token.objects.select_for_update().get(pk=token.pk)
    for name, value in data.items():
        if name in {"country_code", "party_id", "uid", "type"}:
            continue
        if name in {"visual_number", "group_id", "language", "default_profile_type"}:
            value = value or ""
        setattr(token, name, value)
    token.save()
    return token


# --- Commands module (receiver) ---

COMMAND_TIMEOUT_SECONDS = 30  # CommandResponse.timeout: how long the eMSP waits for the result
# The commands that go to the charger as a chargers.RemoteCommand.
REMOTE_TYPES = ("START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR")


def _command_request_id(party: Party, location_id: str, reservation_id: str) -> str:
    # A booking's request_id is the eMSP's id space; a ReserveNow gets its own, derived one.
    import uuid

    key = f"{party.country_code}*{party.party_id}/{location_id.upper()}/{reservation_id.upper()}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ocpi-reserve-now:{key}"))


def command_reserve_now(
    *, party: Party, data: Mapping[str, Any], payload: Mapping[str, Any]
) -> tuple[str, str]:
    """Hold an EVSE for the token until expiry_date (a booking like any other); returns the
    CommandResponse (result, message). A reservation_id already used at that location replaces
    the earlier reservation. Raises OcpiError 2003 for an unknown location."""
    from bookings import exceptions as booking_exc
    from bookings.models import OPEN_STATUSES, CanceledReason
    from bookings.services import Actor, TokenData, booking_cancel, booking_reserve_now

    from .models import Command

    token = data["token"]
    location = _command_location(data["location_id"])
    actor = Actor.emsp(party.country_code, party.party_id)
    request_id = _command_request_id(party, location.ocpi_id, data["reservation_id"])
    try:
        with transaction.atomic():
            previous = (
                Command.objects.select_related("booking")
                .filter(
                    party=party,
                    type=Command.Type.RESERVE_NOW,
                    reservation_id__iexact=data["reservation_id"],
                    booking__location=location,
                )
                .order_by("-id")
                .first()
            )
            if previous and previous.booking and previous.booking.status in OPEN_STATUSES:
                booking_cancel(booking=previous.booking, actor=actor, reason=CanceledReason.UNKNOWN,
                               note="Replaced by a new RESERVE_NOW with the same id.")  # fmt: skip
            if previous and previous.booking:
                # The booking's request_id is unique per party: free it for the replacement.
                request_id = _command_request_id(
                    party, location.ocpi_id, f"{data['reservation_id']}#{previous.pk}"
                )
            booking = booking_reserve_now(
                location=location,
                until=data["expiry_date"],
                actor=actor,
                request_id=request_id,
                evse_uid=data.get("evse_uid") or None,
                tokens=[TokenData(token["country_code"], token["party_id"], token["uid"],
                                  token["type"], token["contract_id"])],
                authorization_reference=data.get("authorization_reference") or "",
            )  # fmt: skip
            command = Command.objects.create(
                party=party, type=Command.Type.RESERVE_NOW, booking=booking,
                reservation_id=data["reservation_id"], response_url=data["response_url"],
                payload=dict(payload),
            )  # fmt: skip
            _after_commit_result(command.pk)
    except booking_exc.UnknownEVSE as error:
        return "REJECTED", error.message
    except booking_exc.BookingError as error:
        return "REJECTED", error.message
    return "ACCEPTED", ""


def command_cancel_reservation(
    *, party: Party, data: Mapping[str, Any], payload: Mapping[str, Any]
) -> tuple[str, str]:
    """Cancel the booking a RESERVE_NOW made; the CommandResult says what came of it."""
    from bookings import exceptions as booking_exc
    from bookings.models import OPEN_STATUSES, CanceledReason
    from bookings.services import Actor, booking_cancel

    from .models import Command

    with transaction.atomic():
        reserve = (
            Command.objects.select_related("booking")
            .filter(party=party, type=Command.Type.RESERVE_NOW,
                    reservation_id__iexact=data["reservation_id"])
            .order_by("-id")
            .first()
        )  # fmt: skip
        command = Command.objects.create(
            party=party, type=Command.Type.CANCEL_RESERVATION,
            booking=reserve.booking if reserve else None,
            reservation_id=data["reservation_id"], response_url=data["response_url"],
            payload=dict(payload),
        )  # fmt: skip
        booking = reserve.booking if reserve else None
        if booking is None or booking.status not in OPEN_STATUSES:
            command.result = Command.Result.UNKNOWN_RESERVATION
        else:
            try:
                booking_cancel(
                    booking=reserve.booking,
                    actor=Actor.emsp(party.country_code, party.party_id),
                    reason=CanceledReason.UNKNOWN,
                    note="OCPI CANCEL_RESERVATION",
                )
                command.result = Command.Result.ACCEPTED
            except booking_exc.BookingError as error:
                command.result = Command.Result.REJECTED
                command.last_error = error.message[:255]
        command.save(update_fields=["result", "last_error"])
        _after_commit_result(command.pk)
    return "ACCEPTED", ""


def _command_location(location_id: str):
    """The published location a command names. Raises OcpiError 2003 for any other."""
    from locations.models import Location

    location = Location.objects.published().filter(ocpi_id__iexact=location_id).first()
    if location is None:
        raise OcpiError(r.UNKNOWN_LOCATION, f"location_id: unknown {location_id!r}.")
    return location


def _command_evse(location, evse_uid: str):
    from locations.models import EVSE

    return (
        EVSE.objects.of_location(location)
        .select_related("charge_point")
        .filter(uid__iexact=evse_uid)
        .first()
    )


def command_start_session(
    *, party: Party, data: Mapping[str, Any], payload: Mapping[str, Any]
) -> tuple[str, str]:
    """START_SESSION: a remote start at the EVSE for the token (bookings.holds.
    remote_start_id_tag says who may start on a booked EVSE); returns the CommandResponse.
    Raises OcpiError 2003 for an unknown location."""
    from bookings.exceptions import BookingError
    from bookings.holds import remote_start_id_tag
    from bookings.services import Actor, TokenData
    from chargers.models import RemoteCommand
    from chargers.services import remote_command_create

    from .models import Command

    location = _command_location(data["location_id"])
    if not data.get("evse_uid"):
        return "REJECTED", "Give evse_uid: a session is started on one EVSE."
    evse = _command_evse(location, data["evse_uid"])
    if evse is None:
        return "REJECTED", f"There is no EVSE {data['evse_uid']!r} at {location.ocpi_id}."
    if not evse.remote_startable:
        return "NOT_SUPPORTED", f"EVSE {evse.uid} cannot be started remotely."
    connector = None
    if not data.get("connector_id") and evse.start_needs_connector:
        return "REJECTED", f"Give connector_id: EVSE {evse.uid} starts on a named connector."
    if data.get("connector_id"):
        connector = evse.connectors.filter(connector_id__iexact=data["connector_id"]).first()
        if connector is None:
            return "REJECTED", f"EVSE {evse.uid} has no connector {data['connector_id']!r}."
    token = data["token"]
    reference = data.get("authorization_reference") or ""
    try:
        id_tag, token_type = remote_start_id_tag(
            evse=evse, actor=Actor.emsp(party.country_code, party.party_id),
            token=TokenData(token["country_code"], token["party_id"], token["uid"],
                            token["type"], token["contract_id"]),
            authorization_reference=reference,
        )  # fmt: skip
    except BookingError as error:
        return "REJECTED", error.message
    with transaction.atomic():
        remote = remote_command_create(
            action=RemoteCommand.Action.START, evse=evse, connector=connector, id_tag=id_tag,
            ocpi_token_type=token_type, authorization_reference=reference,
        )  # fmt: skip
        command = Command.objects.create(
            party=party, type=Command.Type.START_SESSION, remote_command=remote,
            response_url=data["response_url"], payload=dict(payload),
        )  # fmt: skip
        _after_commit_result(command.pk)
    return "ACCEPTED", ""


def command_stop_session(
    *, party: Party, data: Mapping[str, Any], payload: Mapping[str, Any]
) -> tuple[str, str]:
    """STOP_SESSION: a remote stop of one of the party's sessions (ocpi.selectors.
    sessions_of_party), found by its OCPI id; UNKNOWN_SESSION for any other."""
    from chargers.models import RemoteCommand
    from chargers.services import remote_command_create

    from .models import Command
    from .selectors import session_of_party

    session = session_of_party(party, data["session_id"])
    if session is None:
        return "UNKNOWN_SESSION", f"You have no session {data['session_id']!r}."
    if session.stopped_at is not None:
        return "REJECTED", f"Session {session.pk} has ended."
    if session.evse is None or not session.evse.remote_startable:
        return "NOT_SUPPORTED", f"Session {session.pk}'s EVSE cannot be stopped remotely."
    with transaction.atomic():
        remote = remote_command_create(
            action=RemoteCommand.Action.STOP, evse=session.evse, session=session
        )
        command = Command.objects.create(
            party=party, type=Command.Type.STOP_SESSION, remote_command=remote,
            response_url=data["response_url"], payload=dict(payload),
        )  # fmt: skip
        _after_commit_result(command.pk)
    return "ACCEPTED", ""


def command_unlock_connector(
    *, party: Party, data: Mapping[str, Any], payload: Mapping[str, Any]
) -> tuple[str, str]:
    """UNLOCK_CONNECTOR: release a connector's lock. Raises OcpiError 2003 for an unknown
    location."""
    from chargers.models import RemoteCommand
    from chargers.services import remote_command_create

    from .models import Command

    location = _command_location(data["location_id"])
    evse = _command_evse(location, data["evse_uid"])
    if evse is None:
        return "REJECTED", f"There is no EVSE {data['evse_uid']!r} at {location.ocpi_id}."
    connector = evse.connectors.filter(connector_id__iexact=data["connector_id"]).first()
    if connector is None:
        return "REJECTED", f"EVSE {evse.uid} has no connector {data['connector_id']!r}."
    if not evse.unlockable:
        return "NOT_SUPPORTED", f"EVSE {evse.uid} has no lock that can be released remotely."
    with transaction.atomic():
        remote = remote_command_create(
            action=RemoteCommand.Action.UNLOCK, evse=evse, connector=connector
        )
        command = Command.objects.create(
            party=party, type=Command.Type.UNLOCK_CONNECTOR, remote_command=remote,
            response_url=data["response_url"], payload=dict(payload),
        )  # fmt: skip
        _after_commit_result(command.pk)
    return "ACCEPTED", ""


def _after_commit_result(command_id: int) -> None:
    from config.celery import enqueue_on_commit

    from .tasks import command_result_task

    enqueue_on_commit(command_result_task, command_id=command_id)


# Where a RESERVE_NOW stands at the charger -> the CommandResult; None = not decided yet.
CHARGER_RESULTS = {
    "HELD": ("ACCEPTED", "Reservation confirmed by the charge point."),
    "NOT_SUPPORTED": ("ACCEPTED", "Held in our booking system (the charger cannot reserve)."),
    "OCCUPIED": ("EVSE_OCCUPIED", "The EVSE is occupied."),
    "FAULTED": ("EVSE_INOPERATIVE", "The EVSE is faulted."),
    "UNAVAILABLE": ("EVSE_INOPERATIVE", "The EVSE is unavailable."),
    "REJECTED": ("REJECTED", "The charge point rejected the reservation."),
    "OFFLINE": ("FAILED", "The charge point is offline."),
}


# The charger's answer to a remote start, stop or unlock (and the bus's own statuses) -> the
# CommandResult.
REMOTE_RESULTS = {
    "Accepted": ("ACCEPTED", ""),
    "Unlocked": ("ACCEPTED", "The connector was unlocked."),
    "Rejected": ("REJECTED", "The charge point rejected the command."),
    "UnlockFailed": ("FAILED", "The charge point could not unlock the connector."),
    "NotSupported": ("NOT_SUPPORTED", "The charge point cannot unlock this connector."),
    "OngoingAuthorizedTransaction": ("REJECTED", "A session is running on the connector."),
    "UnknownConnector": ("FAILED", "The charge point does not know the connector."),
    "Offline": ("FAILED", "The charge point is offline."),
    "Timeout": ("TIMEOUT", "The charge point did not answer in time."),
    "NotSent": ("FAILED", "The charge point was busy; the command was not sent."),
    "CallError": ("FAILED", "The charge point could not process the command."),
}


def _remote_outcome(remote) -> tuple[str, str] | None:
    from bookings.selectors import running_sessions
    from chargers.models import RemoteCommand
    from locations.models import EVSEStatus

    if not remote.reply:
        return None
    if remote.reply == "Rejected" and remote.action == RemoteCommand.Action.START and remote.evse:
        # A charger says only "Rejected"; what we know of the EVSE says why, when it can.
        evse = remote.evse
        if evse.status in (EVSEStatus.CHARGING, EVSEStatus.BLOCKED) or running_sessions(
            evse_ids=[evse.pk]
        ):
            return "EVSE_OCCUPIED", f"EVSE {evse.uid} is occupied: a session is running on it."
        if evse.status in (EVSEStatus.INOPERATIVE, EVSEStatus.OUTOFORDER):
            return "EVSE_INOPERATIVE", f"EVSE {evse.uid} is out of order."
    unknown = ("FAILED", f"The charge point answered {remote.reply}.")
    return REMOTE_RESULTS.get(remote.reply, unknown)


def command_outcome(command, *, now) -> tuple[str, str] | None:
    """The CommandResult for a command, or None while the charger has not answered yet."""
    from datetime import timedelta

    from bookings.models import Status

    if command.result:
        return command.result, command.last_error
    if command.type in REMOTE_TYPES:
        decided = _remote_outcome(command.remote_command) if command.remote_command else None
        if decided:
            return decided
        if now >= command.received_at + timedelta(seconds=COMMAND_TIMEOUT_SECONDS):
            return "TIMEOUT", "The charge point did not answer in time."
        return None
    booking = command.booking
    if booking is None:
        return "FAILED", "The reservation no longer exists."
    if booking.status == Status.CANCELED:
        return "CANCELED_RESERVATION", "The reservation was canceled."
    decided = CHARGER_RESULTS.get(booking.charger_reservation)
    if decided:
        return decided
    if now >= command.received_at + timedelta(seconds=COMMAND_TIMEOUT_SECONDS):
        return "TIMEOUT", "The charge point did not answer in time."
    return None


def command_result_deliver(*, command_id: int, now=None) -> str:
    """POST the CommandResult once it is known: returns "sent", "wait" or "failed"."""
    from .models import Command

    now = now or timezone.now()
    command = Command.objects.select_related("booking", "party", "remote_command").get(
        pk=command_id
    )
    if command.result_sent_at is not None:
        return "sent"
    outcome = command_outcome(command, now=now)
    if outcome is None:
        return "wait"
    result, message = outcome
    body: dict[str, Any] = {"result": result}
    if message:
        body["message"] = [{"language": "en", "text": message[:512]}]
    party = command.party
    Command.objects.filter(pk=command.pk).update(attempts=command.attempts + 1)
    try:
        client.call(
            "POST", command.response_url, token=party.token_b, raw_token=party.legacy_raw_token,
            json=body, to=(party.country_code, party.party_id),
        )  # fmt: skip
    except client.ClientError as error:
        Command.objects.filter(pk=command.pk).update(last_error=str(error)[:255])
        return "failed"
    Command.objects.filter(pk=command.pk).update(result=result, result_sent_at=timezone.now())
    return "sent"
