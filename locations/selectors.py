"""Read paths for locations that leave the app (booking engine, staff pages, OCPI)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet

from .models import EVSE, BookingPolicy, ChargePoint, Connector, Location, Tariff, TariffElement
from .tariffs import Component, Element, Restrictions, TariffTerms


def location_get(*, location_id: int | str) -> Location:
    """The location by primary key or OCPI id, with its rules loaded (policy, regular hours,
    exceptional periods). Raises Location.DoesNotExist."""
    locations = Location.objects.with_rules()
    if isinstance(location_id, int) or (isinstance(location_id, str) and location_id.isdigit()):
        with contextlib.suppress(Location.DoesNotExist):
            return locations.get(pk=int(location_id))
    return locations.get(ocpi_id=str(location_id))


def location_get_ci(*, ocpi_id: str) -> Location:
    """The location by its OCPI id compared case-insensitively (a CiString), with its rules.
    Raises Location.DoesNotExist."""
    return Location.objects.with_rules().get(ocpi_id__iexact=ocpi_id)


def same_ci_string(a: str, b: str) -> bool:
    """Whether two OCPI CiStrings (printable ASCII) are equal regardless of case, as the ORM's
    `iexact` compares them; a non-ASCII value equals none."""
    return a.isascii() and b.isascii() and a.upper() == b.upper()


def evse_at_location(*, location_id: str, evse_uid: str) -> EVSE:
    """The EVSE of this uid at the location of this OCPI id (a CiString), with its charge point,
    location and both booking policies in one query, as a booking reads them.
    Raises EVSE.DoesNotExist, also when the EVSE is at another location.

    Looked up by its unique uid alone and the location compared here: the query is compiled on
    every booking request, and the case-insensitive filter through two joins was a sixth of its
    cost (docs/adr/0003-prepared-statements-and-hot-reads.md)."""
    evse = EVSE.objects.select_related(
        "charge_point__location__booking_policy", "booking_policy"
    ).get(uid=evse_uid)
    if not same_ci_string(evse.charge_point.location.ocpi_id, location_id):
        raise EVSE.DoesNotExist(f"EVSE {evse_uid!r} is not at location {location_id!r}.")
    return evse


def evses_of_location(*, location: Location) -> list[EVSE]:
    """All EVSEs of a location in display order, with what availability and the booking rules
    read (charge point, policy override, connectors) and their charge point's location set to
    the one given (no query for it)."""
    evses = list(
        EVSE.objects.select_related("charge_point", "booking_policy")
        # A plain list per EVSE (EVSE.connector_list()): for 50 EVSEs, a third cheaper than
        # filling each EVSE's related-manager cache.
        .prefetch_related(
            Prefetch(
                "connectors", queryset=Connector.objects.order_by("id"), to_attr="loaded_connectors"
            )
        )
        .filter(charge_point__location=location)
        .order_by("charge_point__identity", "ocpp_evse_id", "id")
    )
    for evse in evses:
        evse.charge_point.location = location
    return evses


def location_list(*, published_only: bool = False, search: str = "") -> QuerySet[Location]:
    qs = Location.objects.all()
    if published_only:
        qs = qs.published()
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(city__icontains=search))
    return qs.order_by("name", "id")


def default_policy() -> BookingPolicy:
    return BookingPolicy()


def location_policy(location: Location) -> BookingPolicy:
    """The location's own policy, else the defaults (uses a select_related booking_policy)."""
    try:
        return location.booking_policy
    except BookingPolicy.DoesNotExist:
        return default_policy()


def policy_for(evse: EVSE, location: Location | None = None) -> BookingPolicy:
    """The policy in force on an EVSE: its own override, else its location's, else defaults.

    Uses already-loaded relations where the caller selected them (evses_of_location does).
    """
    try:
        return evse.booking_policy
    except BookingPolicy.DoesNotExist:
        pass
    return location_policy(location or evse.charge_point.location)


def policy_terms(policy: BookingPolicy, *, evse: EVSE) -> dict:
    """The policy's OCPI BookingTerms object on an EVSE (the shape stored on a booking when
    accepted). Remote authorisation (START_SESSION) is offered only where the EVSE can start
    remotely (EVSE.remote_startable) and the policy allows it."""
    terms = {
        "RFID_auth_required": policy.rfid_auth_required,
        "token_groups_supported": policy.token_groups_supported,
        "remote_auth_supported": policy.remote_auth_supported and evse.remote_startable,
        "supported_access_methods": list(policy.supported_access_methods) or ["OPEN"],
        "change_until_minutes": policy.change_until_minutes,
        "cancel_until_minutes": policy.cancel_until_minutes,
        "change_not_allowed": policy.change_not_allowed,
        "early_start_allowed": policy.early_start_allowed,
        "early_start_time": policy.early_start_minutes if policy.early_start_allowed else 0,
        "noshow_fee": policy.noshow_fee,
        "late_stop_allowed": policy.late_stop_allowed,
        "late_stop_time": policy.late_stop_minutes if policy.late_stop_allowed else 0,
        "overlapping_bookings_allowed": policy.overlapping_bookings_allowed,
        # Bookings 1.1 terms (minutes); the 1.0 shape leaves them out.
        "min_booking_duration": policy.min_duration_minutes,
        "max_booking_duration": policy.max_duration_minutes,
    }
    if policy.noshow_timeout_minutes is not None:
        terms["noshow_timeout"] = policy.noshow_timeout_minutes
    if policy.terms_url:
        terms["booking_terms"] = policy.terms_url
    return terms


def reserve_lead(policy: BookingPolicy) -> timedelta:
    return timedelta(minutes=policy.reserve_lead_minutes)


def charge_point_get(*, identity: str) -> ChargePoint:
    """Raises ChargePoint.DoesNotExist."""
    return ChargePoint.objects.select_related("location").get(identity=identity)


def connectors_match(
    connectors: Iterable[Connector],
    *,
    power_type: str | None = None,
    standards: Iterable[str] | None = None,
    min_power_kw: float | None = None,
    max_power_kw: float | None = None,
) -> bool:
    """Whether any connector fits every given criterion. power_type "AC" matches any AC phase."""
    standards = set(standards or ())
    for c in connectors:
        if (power_type == "AC" and c.is_dc) or (power_type == "DC" and not c.is_dc):
            continue
        if power_type not in (None, "", "AC", "DC") and c.power_type != power_type:
            continue
        if standards and c.standard not in standards:
            continue
        if min_power_kw is not None and c.power_watts < min_power_kw * 1000:
            continue
        if max_power_kw is not None and c.power_watts > max_power_kw * 1000:
            continue
        return True
    return False


def published_location_exists(*, location_id: str) -> bool:
    """Whether a published location has this OCPI id (case-insensitive CiString)."""
    return Location.objects.published().filter(ocpi_id__iexact=location_id).exists()


def _applicable(own: Sequence[Tariff], general: Sequence[Tariff]) -> Sequence[Tariff]:
    """The rule of where tariffs apply: an EVSE's own tariffs, else its location's."""
    return own or general


def tariff_ids_for(*, evse: EVSE | None, location: Location) -> list[str]:
    """The OCPI ids of the tariffs in force at an EVSE. Reads the `tariffs` relations, so
    callers that list many prefetch them (`evse__tariffs`, `location__tariffs`)."""
    own = list(evse.tariffs.all()) if evse is not None else []
    return [t.ocpi_id for t in _applicable(own, list(location.tariffs.all()))]


# The tariffs named by an EVSE or by its location, in one small query (a booking stores them
# when it is made: the ORM's two related-manager queries cost more than writing the booking's
# tokens).
_TARIFF_IDS_SQL = (
    "SELECT t.ocpi_id, EXISTS (SELECT 1 FROM locations_tariff_evses te"
    " WHERE te.tariff_id = t.id AND te.evse_id = %(evse)s) AS own"
    " FROM locations_tariff t WHERE t.id IN ("
    " SELECT tariff_id FROM locations_tariff_evses WHERE evse_id = %(evse)s UNION"
    " SELECT tariff_id FROM locations_tariff_locations WHERE location_id = %(location)s)"
    " ORDER BY upper(t.ocpi_id)"
)


def tariff_ids_at(*, evse: EVSE | None, location: Location) -> list[str]:
    """tariff_ids_for, read with one query instead of from loaded relations."""
    with connection.cursor() as cursor:
        cursor.execute(
            _TARIFF_IDS_SQL, {"evse": evse.pk if evse else None, "location": location.pk}
        )
        rows = cursor.fetchall()
    return list(_applicable([i for i, own in rows if own], [i for i, own in rows if not own]))


@dataclass(frozen=True)
class TariffCatalog:
    """Every tariff with its elements and where it applies, loaded at once (five queries) to
    price many sessions without a query each."""

    tariffs: tuple[Tariff, ...]
    evse_ids: dict[int, frozenset[int]]  # tariff pk -> the EVSEs it names
    location_ids: dict[int, frozenset[int]]  # tariff pk -> the locations it names

    def for_session(self, *, evse_id: int | None, location_id: int, at: datetime) -> Tariff | None:
        """The tariff a session started at `at` is priced by: the first (by id) of those that
        apply at the EVSE and are valid then."""
        own = [t for t in self.tariffs if evse_id in self.evse_ids[t.pk]]
        general = [t for t in self.tariffs if location_id in self.location_ids[t.pk]]
        valid = [
            t for t in _applicable(own, general)
            if (t.start_date_time is None or t.start_date_time <= at)
            and (t.end_date_time is None or at < t.end_date_time)
        ]  # fmt: skip
        return min(valid, key=lambda t: t.ocpi_id.upper(), default=None)


def tariff_catalog() -> TariffCatalog:
    tariffs = tuple(tariff_list().prefetch_related("evses", "locations"))
    return TariffCatalog(
        tariffs=tariffs,
        evse_ids={t.pk: frozenset(e.pk for e in t.evses.all()) for t in tariffs},
        location_ids={t.pk: frozenset(loc.pk for loc in t.locations.all()) for t in tariffs},
    )


def tariff_list() -> QuerySet[Tariff]:
    """Every tariff with its elements and their price components, stably ordered for paging."""
    return Tariff.objects.prefetch_related(
        Prefetch(
            "elements",
            queryset=TariffElement.objects.order_by("position", "id").prefetch_related(
                "price_components"
            ),
        )
    ).order_by("last_updated", "id")


def tariff_terms(tariff: Tariff) -> TariffTerms:
    """A tariff as the plain values locations.tariffs prices with (reads its prefetched
    elements and components where tariff_list() loaded them)."""
    return TariffTerms(
        currency=tariff.currency,
        tax_included=tariff.tax_included,
        tax_name=tariff.tax_name,
        tax_percentage=tariff.tax_percentage,
        min_price=tariff.min_price,
        max_price=tariff.max_price,
        elements=tuple(
            Element(
                components=tuple(
                    Component(c.type, c.price, c.step_size) for c in e.price_components.all()
                ),
                restrictions=Restrictions(
                    start_time=e.start_time,
                    end_time=e.end_time,
                    start_date=e.start_date,
                    end_date=e.end_date,
                    min_kwh=e.min_kwh,
                    max_kwh=e.max_kwh,
                    min_current=e.min_current,
                    max_current=e.max_current,
                    min_power=e.min_power,
                    max_power=e.max_power,
                    min_duration=e.min_duration,
                    max_duration=e.max_duration,
                    day_of_week=frozenset(e.day_of_week),
                    reservation=e.reservation,
                ),
            )
            for e in tariff.elements.all()
        ),
    )


def charge_points_connected() -> tuple[int, int]:
    """(connected, all) charge points, as the csms processes recorded them."""
    counts = ChargePoint.objects.aggregate(
        connected=Count("id", filter=Q(is_connected=True)), total=Count("id")
    )
    return counts["connected"], counts["total"]
