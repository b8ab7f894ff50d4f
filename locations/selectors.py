"""Read paths for locations that leave the app (booking engine, staff pages, OCPI)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta

from django.db import connection, models
from django.db.models import Q, QuerySet

from config import loading

from .models import (
    EVSE,
    BookingPolicy,
    ChargePoint,
    Connector,
    ExceptionalPeriod,
    Location,
    RegularHours,
)


def location_get(*, location_id: int | str) -> Location:
    """The location by primary key or OCPI id, with its rules loaded (policy, regular hours,
    exceptional periods, as `Location.objects.with_rules()`). Raises Location.DoesNotExist.

    One query of constant SQL (see config/loading.py): this runs on every availability call.
    """
    if isinstance(location_id, int) or (isinstance(location_id, str) and location_id.isdigit()):
        found = _locations_with_rules("l.id = %s", [int(location_id)])
        if found:
            return found[0]
    found = _locations_with_rules("l.ocpi_id = %s", [str(location_id)])
    if not found:
        raise Location.DoesNotExist(f"There is no location {location_id!r}.")
    return found[0]


def location_get_ci(*, ocpi_id: str) -> Location:
    """The location by its OCPI id compared case-insensitively (a CiString), with its rules.
    Raises Location.DoesNotExist."""
    found = _locations_with_rules("upper(l.ocpi_id) = upper(%s)", [ocpi_id])
    if not found:
        raise Location.DoesNotExist(f"There is no location {ocpi_id!r}.")
    return found[0]


# Shared with bookings.rawsql.request_targets, which sends these statements in its own round trip.


@functools.cache
def location_with_rules_sql(where: str) -> str:
    """SELECT of locations matching `where` (alias l) with their policy, and their regular hours
    and exceptional periods as JSON arrays: one statement for a whole location. Rows go to
    location_from_row."""
    return (
        f"SELECT {loading.columns(Location, 'l')}, {loading.columns(BookingPolicy, 'p')}, "
        "(SELECT json_agg(json_build_array("
        f"{loading.columns(RegularHours, 'h')}) ORDER BY h.weekday, h.period_begin, h.id)::text "
        "FROM locations_regularhours h WHERE h.location_id = l.id), "
        "(SELECT json_agg(json_build_array("
        f"{loading.columns(ExceptionalPeriod, 'x')}) ORDER BY x.period_begin, x.id)::text "
        "FROM locations_exceptionalperiod x WHERE x.location_id = l.id) "
        "FROM locations_location l LEFT JOIN locations_bookingpolicy p ON p.location_id = l.id "
        f"WHERE {where} ORDER BY l.id"
    )


def location_from_row(row: Sequence) -> Location:
    """A Location with its rules loaded, from a row of location_with_rules_sql."""
    n_location = loading.width(Location)
    location = loading.build(Location, row[:n_location])
    policy = loading.build_at(BookingPolicy, row, n_location)
    loading.set_related(location, Location.booking_policy, policy)
    if policy is not None:
        loading.set_related(policy, BookingPolicy.location, location)
    hours = [_from_json(RegularHours, v) for v in json.loads(row[-2] or "[]")]
    periods = [_from_json(ExceptionalPeriod, v) for v in json.loads(row[-1] or "[]")]
    for child in (*hours, *periods):
        loading.set_related(child, type(child).location, location)
    loading.set_prefetched(location, "regular_hours", hours)
    loading.set_prefetched(location, "exceptional_periods", periods)
    return location


def _locations_with_rules(where: str, params: list) -> list[Location]:
    with connection.cursor() as cursor:
        cursor.execute(location_with_rules_sql(where), params)
        return [location_from_row(row) for row in cursor.fetchall()]


def _from_json(model: type[models.Model], values: list) -> models.Model:
    """An instance from json_build_array of its columns (JSON carries times as ISO strings)."""
    for i, field in enumerate(model._meta.concrete_fields):
        if isinstance(values[i], str) and isinstance(field, models.TimeField):
            values[i] = time.fromisoformat(values[i])
        elif isinstance(values[i], str) and isinstance(field, models.DateTimeField):
            values[i] = datetime.fromisoformat(values[i])
    return loading.build(model, values)


@functools.cache
def evses_sql(where: str) -> str:
    """Two statements: the EVSEs matching `where` (aliases e for the EVSE, cp for its charge
    point) with charge point and policy override, in display order, then their connectors. Both
    take the parameters of `where`. Rows go to evses_from_rows."""
    matching = (
        "FROM locations_evse e JOIN locations_chargepoint cp ON cp.id = e.charge_point_id "
        f"WHERE {where}"
    )
    return (
        f"SELECT {loading.columns(EVSE, 'e')}, {loading.columns(ChargePoint, 'cp')}, "
        f"{loading.columns(BookingPolicy, 'p')} "
        "FROM locations_evse e JOIN locations_chargepoint cp ON cp.id = e.charge_point_id "
        "LEFT JOIN locations_bookingpolicy p ON p.evse_id = e.id "
        f"WHERE {where} ORDER BY cp.identity, e.ocpp_evse_id, e.id; "
        f"SELECT {loading.columns(Connector, 'c')} FROM locations_connector c "
        f"WHERE c.evse_id IN (SELECT e.id {matching}) ORDER BY c.id"
    )


def evses_from_rows(rows: Sequence, connector_rows: Sequence, location: Location) -> list[EVSE]:
    """EVSEs with charge point (at `location`), policy override and connectors loaded, from
    the rows of the two statements of evses_sql."""
    n_evse, n_cp = loading.width(EVSE), loading.width(ChargePoint)
    evses: list[EVSE] = []
    connectors: dict[int, list[Connector]] = {}
    for row in rows:
        evse = loading.build(EVSE, row[:n_evse])
        charge_point = loading.build_at(ChargePoint, row, n_evse)
        loading.set_related(charge_point, ChargePoint.location, location)
        loading.set_related(evse, EVSE.charge_point, charge_point)
        policy = loading.build_at(BookingPolicy, row, n_evse + n_cp)
        loading.set_related(evse, EVSE.booking_policy, policy)
        if policy is not None:
            loading.set_related(policy, BookingPolicy.evse, evse)
        evses.append(evse)
        connectors[evse.pk] = []
    for row in connector_rows:
        connector = loading.build(Connector, row)
        connectors[connector.evse_id].append(connector)
    for evse in evses:
        for connector in connectors[evse.pk]:
            loading.set_related(connector, Connector.evse, evse)
        loading.set_prefetched(evse, "connectors", connectors[evse.pk])
    return evses


def evses_of_location(*, location: Location) -> list[EVSE]:
    """All EVSEs of a location in display order, with their charge point (its location set to
    the one given), their own policy override and their connectors loaded.

    Two statements of constant SQL in one round trip (see config/loading.py), whatever the
    EVSE count.
    """
    with connection.cursor() as cursor:
        # Both statements in one round trip (client-side binding sends them as one string).
        cursor.execute(evses_sql("cp.location_id = %s"), [location.pk, location.pk])
        rows = cursor.fetchall()
        cursor.nextset()
        return evses_from_rows(rows, cursor.fetchall(), location)


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


def policy_terms(policy: BookingPolicy) -> dict:
    """The policy's OCPI BookingTerms object (the shape stored on a booking when accepted)."""
    terms = {
        "RFID_auth_required": policy.rfid_auth_required,
        "token_groups_supported": policy.token_groups_supported,
        "remote_auth_supported": policy.remote_auth_supported,
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
    # Runs on every change or cancel of a BookingRequest (a new request reads the location's
    # publish flag with its rules): constant SQL, as compiling the ORM's EXISTS cost ~1 ms.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM locations_location WHERE publish AND UPPER(ocpi_id::text) = UPPER(%s)"
            " LIMIT 1",
            [location_id],
        )
        return cursor.fetchone() is not None
