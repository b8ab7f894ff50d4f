"""Constant SQL for the statements every new booking and every OCPI BookingRequest runs.

Compiling an ORM SELECT costs about 1 ms of CPU on the 2-core machine (an INSERT less), a round
trip 0.1-0.2 ms, so on the per-booking paths the compile cost dominated. The SQL here is built
once per process from the models' own fields (a field added to a model is written and read here
too) and then only executed. Values go through each field's `pre_save` and `get_db_prep_save`,
as in the ORM's INSERT, and rows read back through the fields' converters, so what is written
and loaded is the same as through the ORM (tests/bookings/test_rawsql.py).

insert_booking, request_targets and request_lookup send several statements in one round trip,
which needs Django's default client-side parameter binding (no `server_side_binding` in the
database OPTIONS): PostgreSQL's simple query protocol then takes them as one string. Their
statements are prepared once per connection (config.db.Prepared), which saves PostgreSQL the
parsing and planning of each call.
"""

from __future__ import annotations

import contextlib
import copy
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from psycopg.types.json import Jsonb
from psycopg.types.range import Range

from config.db import Prepared, execute_prepared
from locations.models import (
    EVSE,
    Location,
)
from locations.selectors import (
    evses_from_rows,
    evses_sql,
    location_from_row,
    location_with_rules_sql,
)

from .models import BLOCKING_STATUSES, Booking, BookingRequest, BookingToken, BookingTransition


def _fields(model: type[models.Model], *skip: str) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in skip]


def _placeholder(field: models.Field) -> str:
    # The ORM's INSERT asks the field too (range fields cast: `%s::tstzrange`).
    if hasattr(field, "get_placeholder"):
        return field.get_placeholder(None, None, connection)
    return "%s"


def _columns(fields: Sequence[models.Field]) -> str:
    return ", ".join(connection.ops.quote_name(f.column) for f in fields)


# Field classes whose pre_save and get_db_prep_save return a value of these exact types as it
# is (CharField.to_python of a str, IntegerField's int(), a foreign key's integer id, ...).
_AS_IS: dict[type[models.Field], tuple[type, ...]] = {
    models.CharField: (str,),
    models.TextField: (str,),
    models.BooleanField: (bool,),
    models.IntegerField: (int,),
    models.BigIntegerField: (int,),
    models.SmallIntegerField: (int,),
    models.PositiveIntegerField: (int,),
    models.PositiveSmallIntegerField: (int,),
    models.PositiveBigIntegerField: (int,),
    models.ForeignKey: (int,),
    models.OneToOneField: (int,),
}


Plan = list[tuple[models.Field, str, tuple[type, ...]]]


def _plan(fields: Sequence[models.Field]) -> Plan:
    """What _values needs per field, worked out once with the statement."""
    return [(f, f.attname, _AS_IS.get(type(f), ())) for f in fields]


def _values(obj: models.Model, plan: Plan) -> list[Any]:
    """Each field's value as the ORM's INSERT sends it (pre_save, then get_db_prep_save).

    Strings, integers, booleans and None in fields of the plain classes above are sent as they
    are, which is what those fields' methods return for them, without the ~2 us a field the
    calls cost; every other value (dates, JSON, ranges, UUIDs, choices enums) takes the calls.
    """
    conn = connections[DEFAULT_DB_ALIAS]  # once, not once per field through the proxy
    values = []
    for field, attname, as_is in plan:
        if as_is:
            value = getattr(obj, attname)
            if value is None or type(value) in as_is:
                values.append(value)
                continue
        values.append(field.get_db_prep_save(field.pre_save(obj, True), conn))
    return values


def _saved(obj: models.Model, pk: int) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias


@cache
def _insert_sql(model: type[models.Model]) -> tuple[Plan, str]:
    fields = _fields(model)
    table = connection.ops.quote_name(model._meta.db_table)
    values = ", ".join(_placeholder(f) for f in fields)
    return _plan(fields), f"INSERT INTO {table} ({_columns(fields)}) VALUES ({values}) RETURNING id"


def insert_row(obj: models.Model) -> None:
    """INSERT one new model instance (no signals, like bulk_create) and set its pk."""
    plan, sql = _insert_sql(type(obj))
    with connection.cursor() as cursor:
        cursor.execute(sql, _values(obj, plan))
        _saved(obj, cursor.fetchone()[0])


@cache
def _booking_id_sql() -> str:
    """The id of the booking the same statement string inserted (this session's currval)."""
    table = Booking._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, Booking._meta.pk.column])
        sequence = cursor.fetchone()[0]
    return f"currval('{sequence}'::regclass)"


# The token rule as a guard statement of the booking's own write (migration 0006): it raises
# an exclusion violation naming this constraint when a token already holds a blocking booking.
TOKEN_GUARD = "booking_token_no_overlap"


def _json_value(value: Any) -> Any:
    """A value as get_db_prep_save returns it, as JSON that jsonb_populate_record reads into
    its column: text in the column type's input format, the JSON itself for json columns."""
    if value is None or isinstance(value, str | bool | int | float):
        return value  # a choices enum is a str: JSON writes its value
    if isinstance(value, Jsonb):
        return (
            value.obj if value.dumps in (None, json.dumps) else json.loads(value.dumps(value.obj))
        )
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, Range):
        if value.isempty:
            return "empty"
        lower = "" if value.lower is None else f'"{_json_value(value.lower)}"'
        upper = "" if value.upper is None else f'"{_json_value(value.upper)}"'
        return f"{value.bounds[0]}{lower},{upper}{value.bounds[1]}"
    raise TypeError(f"No JSON form for a {type(value).__name__} column value.")


JsonPlan = list[tuple[str, Callable[[models.Model], Any]]]


def _json_plan(fields: Sequence[models.Field]) -> JsonPlan:
    """Per field, the column and what gives its JSON value, worked out once with the statement.

    Plain values (above) and JSON fields without an encoder are taken as they are; every other
    field goes through pre_save and get_db_prep_save as in the ORM's INSERT, then _json_value.
    (tests/bookings/test_rawsql.py compares every field written here with what the ORM reads.)
    """
    conn = connections[DEFAULT_DB_ALIAS]
    plan: JsonPlan = []
    for field in fields:
        attname = field.attname
        as_is = _AS_IS.get(type(field), ())
        # As in _values, plus a str subclass (a choices enum) in a text field, which
        # CharField.to_python leaves as it is and JSON writes as its value. (A bool is not
        # taken for an integer field: JSON would write true.)
        text = as_is == (str,)

        def full(obj: models.Model, field: models.Field = field) -> Any:
            return _json_value(field.get_db_prep_save(field.pre_save(obj, True), conn))

        if isinstance(field, models.JSONField) and field.encoder is None:

            def convert(obj: models.Model, attname: str = attname, full=full) -> Any:
                value = getattr(obj, attname)
                return full(obj) if value is None else value  # None: the field's own rule

        elif as_is:

            def convert(obj: models.Model, attname=attname, as_is=as_is, text=text, full=full):
                value = getattr(obj, attname)
                if value is None or type(value) in as_is or (text and isinstance(value, str)):
                    return value
                return full(obj)

        else:
            convert = full
        plan.append((field.column, convert))
    return plan


def _json_row(obj: models.Model, plan: JsonPlan) -> str:
    """The row of obj's fields in plan as one JSON object keyed by column: one parameter for
    the whole row instead of one SQL literal per field (the booking row with its binding:
    0.070 -> 0.052 ms, micro-benchmark; the per-field plan then took the row alone from 0.045 to
    0.035 ms), and no query of more than 50 parameters, which psycopg parses on every call.

    Written by orjson (a BookingRequest's four rows: 15 -> 1.2 us); what orjson would
    refuse or write its own way (an integer beyond 64 bits, a key that is not a string, a
    datetime in a JSON value) goes to json.dumps, as through the ORM."""
    row = {column: convert(obj) for column, convert in plan}
    try:
        return orjson.dumps(row, option=_ORJSON_STRICT).decode()
    except TypeError:
        return json.dumps(row, separators=(",", ":"))


_ORJSON_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class _BookingWrite:
    """The prepared statements of a new booking's write and what binds their parameters.

    Each row travels as one JSON parameter that jsonb_populate_record turns into the table's
    row type (each column through its type's input function, as a literal would be)."""

    def __init__(self) -> None:
        q = connection.ops.quote_name
        booking_id = _booking_id_sql()

        def insert(model: type[models.Model], fields: list[models.Field], child: bool) -> str:
            table = q(model._meta.db_table)
            columns = _columns(fields)
            source = f"jsonb_populate_record(NULL::{table}, %s::jsonb) AS x"
            if child:
                return (
                    f"INSERT INTO {table} (booking_id, {columns})"
                    f" SELECT {booking_id}, {columns} FROM {source} RETURNING id"
                )
            return f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {source} RETURNING id"

        booking_fields = _fields(Booking)
        audit_fields = _fields(BookingTransition, "booking")
        request_fields = _fields(BookingRequest, "booking")
        self.booking_plan = _json_plan(booking_fields)
        self.audit_plan = _json_plan(audit_fields)
        self.request_plan = _json_plan(request_fields)
        # period and blocking are the booking's, copied by a trigger (models.BookingToken).
        token_fields = _fields(BookingToken, "booking", "period", "blocking")
        self.token_plan = _json_plan(token_fields)
        token_table = q(BookingToken._meta.db_table)
        tokens_sql = (
            f"INSERT INTO {token_table} (booking_id, {_columns(token_fields)})"
            f" SELECT {booking_id}, {_columns(token_fields)}"
            f" FROM jsonb_populate_recordset(NULL::{token_table}, %s::jsonb)"
            " WITH ORDINALITY AS x ORDER BY x.ordinality RETURNING id"
        )
        self.guard = Prepared(
            "cb_token_guard", "SELECT bookings_token_guard(%s, %s, %s::text[], %s::text[])"
        )
        self.request_lock = Prepared(
            "cb_request_id_lock", "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
        )
        self.rules_check = Prepared(
            "cb_rules_check", "SELECT bookings_rules_check(%s::bigint, %s::bigint, %s::text)"
        )
        self.booking = Prepared("cb_booking_insert", insert(Booking, booking_fields, False))
        self.tokens = Prepared("cb_booking_tokens_insert", tokens_sql)
        self.audit = Prepared(
            "cb_booking_audit_insert", insert(BookingTransition, audit_fields, True)
        )
        self.request = Prepared(
            "cb_booking_request_insert", insert(BookingRequest, request_fields, True)
        )


@cache
def _booking_write() -> _BookingWrite:
    return _BookingWrite()


def insert_booking(
    booking: Booking,
    *,
    tokens: Sequence[BookingToken],
    audit: BookingTransition,
    request: BookingRequest | None = None,
    token_guard: bool = False,
    rules: RulesStamp | None = None,
) -> None:
    """INSERT a new booking, its tokens, its first audit row and the BookingRequest that asked
    for it (if any), and set their pks.

    The statements are prepared (config.db.Prepared) and travel as one statement string in one
    round trip (the later ones take the booking's id from currval). PostgreSQL runs such a
    string as one transaction when none is open, so outside an atomic block this is the whole
    write of a booking, commit included, and still all or nothing; inside one, the caller's
    block decides. Raises IntegrityError as booking.save() would (the exclusion constraint,
    the unique request_id), and, with token_guard, an exclusion violation naming TOKEN_GUARD
    when one of the tokens already holds a blocking booking overlapping the booking's period.
    Two writes for the same eMSP request_id take turns (a transaction-level advisory lock).
    With `rules`, the stamp of the location and EVSE rows the booking was decided on, nothing
    is written once those rows changed: a serialization failure naming RULES_STAMP."""
    w = _booking_write()
    calls: list[tuple[Prepared, Sequence[Any]]] = []
    # Writes of one eMSP request_id take turns (an advisory lock held to the end of the write's
    # transaction): racing copies of one request otherwise deadlocked in the exclusion and
    # unique checks, and a copy turned REJECTED by the deadlock could win over the booking.
    lock = bool(booking.request_id)
    if lock:
        key = f"booking-request:{booking.emsp_country_code}:{booking.emsp_party_id}:"
        calls.append((w.request_lock, [key + booking.request_id]))
    if rules is not None:
        calls.append((w.rules_check, [rules.location_id, rules.evse_id, rules.value]))
    guard = token_guard and bool(tokens)
    if guard:
        uids, countries = [t.uid for t in tokens], [t.country_code for t in tokens]
        calls.append((w.guard, [booking.period.lower, booking.period.upper, uids, countries]))
    calls.append((w.booking, [_json_row(booking, w.booking_plan)]))
    if tokens:
        rows = ",".join(_json_row(t, w.token_plan) for t in tokens)
        calls.append((w.tokens, [f"[{rows}]"]))
    calls.append((w.audit, [_json_row(audit, w.audit_plan)]))
    if request is not None:
        calls.append((w.request, [_json_row(request, w.request_plan)]))
    with connection.cursor() as cursor:
        execute_prepared(cursor, calls)
        for _ in range(lock + (rules is not None) + guard):  # one void row each
            cursor.nextset()
        _saved(booking, cursor.fetchone()[0])
        if tokens:
            cursor.nextset()
            # The sequence numbers the rows in unnest's order; RETURNING's order is not promised.
            ids = sorted(row[0] for row in cursor.fetchall())
            for token, pk in zip(tokens, ids, strict=True):
                token.booking = booking
                _saved(token, pk)
        cursor.nextset()
        audit.booking = booking
        _saved(audit, cursor.fetchone()[0])
        if request is not None:
            cursor.nextset()
            request.booking = booking
            _saved(request, cursor.fetchone()[0])


# The blocking statuses as an SQL list, spelled as the partial GiST indexes' predicate is.
BLOCKING_IN = ", ".join(f"'{status}'" for status in BLOCKING_STATUSES)

# One probe of bookingtoken_blocking_gist per token: the tokens carry their booking's period and
# blocking flag, so the cost does not grow with the bookings a token had before.
_TOKEN_CLASH_SQL = """
    SELECT 1 FROM bookings_bookingtoken t
    WHERE t.blocking
      AND t.period && tstzrange(%s, %s, '[)')
      AND (t.uid, t.country_code) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
      AND t.booking_id <> %s
    LIMIT 1
"""


def token_clash(
    *, uids: Sequence[str], country_codes: Sequence[str], start: datetime, end: datetime,
    exclude_booking_id: int | None,
) -> bool:  # fmt: skip
    """Whether a blocking booking other than exclude_booking_id overlapping [start, end) holds
    one of the tokens (uid and country code pairwise)."""
    with connection.cursor() as cursor:
        cursor.execute(
            # Ids start at 1: excluding 0 excludes nothing.
            _TOKEN_CLASH_SQL,
            [start, end, list(uids), list(country_codes), exclude_booking_id or 0],
        )
        return cursor.fetchone() is not None


def locked_booking_id(*, country_code: str, party_id: str, request_id: str) -> int | None:
    """The id of the party's booking for request_id, locked FOR UPDATE; None when there is none."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM bookings_booking WHERE emsp_country_code = %s AND emsp_party_id = %s"
            " AND request_id = %s FOR UPDATE",
            [country_code, party_id, request_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


# The constraint name of bookings_rules_check's refusal (migration bookings 0009).
RULES_STAMP = "bookings_rules_stamp"


@dataclass(frozen=True)
class RulesStamp:
    """The version of a location's and one of its EVSEs' rows (policy, hours, periods, charge
    point, connectors) as they were read: bookings_rules_stamp, which any write to one of those
    rows changes. insert_booking(rules=...) writes nothing once it changed."""

    location_id: int
    evse_id: int | None
    value: str


class _Targets:
    """The prepared statements that find a BookingRequest's booking, location and EVSE: the
    location statement and the EVSE statements of locations.selectors, and their rules stamp."""

    def __init__(self) -> None:
        location = location_with_rules_sql("upper(l.ocpi_id::text) = upper(%s::text)")
        evses, connectors = evses_sql("e.uid = %s::text").split("; ")
        self.booking = Prepared(
            "cb_request_booking_id",
            # `request_id <> ''` is the unique index's predicate: with it, the generic plan
            # (no planning per call) can use that partial index.
            "SELECT id FROM bookings_booking WHERE emsp_country_code = %s AND emsp_party_id = %s"
            " AND request_id = %s AND request_id <> ''",
        )
        # Read before the rows: a change that lands in between leaves an older stamp with
        # newer rows, which the next write refuses, never the other way round.
        self.stamp = Prepared(
            "cb_rules_stamp",
            "SELECT l.id, e.id, bookings_rules_stamp(l.id, e.id) FROM locations_location l"
            " LEFT JOIN locations_evse e ON e.uid = %s::text"
            " WHERE upper(l.ocpi_id::text) = upper(%s::text)",
        )
        self.location = Prepared("cb_location_by_ocpi_id", location)
        self.evse = Prepared("cb_evse_by_uid", evses)
        self.connectors = Prepared("cb_connectors_by_evse_uid", connectors)

    def calls(self, location_id: str, evse_uid: str) -> list[tuple[Prepared, Sequence[Any]]]:
        return [
            (self.location, [location_id]),
            (self.evse, [evse_uid]),
            (self.connectors, [evse_uid]),
        ]


@cache
def _targets() -> _Targets:
    return _Targets()


Rows = tuple[list[tuple], list[tuple], list[tuple]]  # locations, EVSEs, connectors


def _read_rows(cursor: Any) -> Rows:
    locations = cursor.fetchall()
    cursor.nextset()
    evses = cursor.fetchall()
    cursor.nextset()
    return locations, evses, cursor.fetchall()


def _targets_from(rows: Rows, location_id: str) -> tuple[Location | None, EVSE | None]:
    locations, evses, connectors = rows
    if len(locations) > 1:
        raise Location.MultipleObjectsReturned(f"{len(locations)} locations {location_id!r}.")
    if not locations:
        return None, None
    location = location_from_row(locations[0])
    found = evses_from_rows(evses, connectors, location)
    # EVSE uids are unique: one found at another location is not this location's.
    if not found or found[0].charge_point.location_id != location.pk:
        return location, None
    return location, found[0]


def request_targets(*, location_id: str, evse_uid: str) -> tuple[Location | None, EVSE | None]:
    """The location by OCPI id (case-insensitive) with its policy, regular hours and exceptional
    periods, and its EVSE evse_uid with charge point, policy and connectors, as
    Location.objects.with_rules() and select_related would load them, in one round trip.
    Raises Location.MultipleObjectsReturned as .get() would."""
    with connection.cursor() as cursor:
        execute_prepared(cursor, _targets().calls(location_id, evse_uid))
        return _targets_from(_read_rows(cursor), location_id)


# The rows request_lookup read for a (location, EVSE) pair with their stamp, per process, for
# cached_targets. Rows, not model instances: each request builds its own instances, so no
# request sees another's changes to them. Oldest out first beyond _KEPT pairs.
_kept: dict[tuple[str, str], tuple[RulesStamp, Rows]] = {}
_KEPT = 1024


def _keep(location_id: str, evse_uid: str, stamps: list[tuple], rows: Rows, found: tuple) -> None:
    key = (location_id.upper(), evse_uid)
    if len(stamps) != 1 or found[0] is None or (evse_uid and found[1] is None):
        _kept.pop(key, None)  # unknown location or EVSE: those answers are not kept
        return
    location_pk, evse_pk, value = stamps[0]
    if len(_kept) >= _KEPT and key not in _kept:
        # Another thread may change the dict meanwhile: then someone else made room.
        with contextlib.suppress(RuntimeError, StopIteration):
            _kept.pop(next(iter(_kept)), None)
    _kept[key] = (RulesStamp(location_pk, evse_pk, value), rows)


def cached_targets(
    *, location_id: str, evse_uid: str
) -> tuple[Location, EVSE | None, RulesStamp] | None:
    """request_targets' location and EVSE built from the rows this process read last time for
    them (no round trip), with the stamp of those rows; None when none are kept. A booking
    decided on them must be written with `rules=` that stamp, which refuses the write once the
    rows changed."""
    kept = _kept.get((location_id.upper(), evse_uid))
    if kept is None:
        return None
    stamp, (locations, evses, connectors) = kept
    # JSON columns come back as lists and dicts: each request gets copies of those.
    rows = tuple(
        [tuple(copy.deepcopy(v) if type(v) in (list, dict) else v for v in row) for row in part]
        for part in (locations, evses, connectors)
    )
    location, evse = _targets_from(rows, location_id)
    if location is None or (evse_uid and evse is None):
        return None
    return location, evse, stamp


def forget_targets(*, location_id: str, evse_uid: str) -> None:
    """Drop the kept rows of a location and EVSE (their stamp no longer matches)."""
    _kept.pop((location_id.upper(), evse_uid), None)


def request_lookup(
    *, country_code: str, party_id: str, request_id: str, location_id: str, evse_uid: str
) -> tuple[int | None, Location | None, EVSE | None]:
    """The id of the party's booking for request_id (None when there is none, not locked) and
    request_targets' location and EVSE, in one round trip; their rows are kept for
    cached_targets."""
    with connection.cursor() as cursor:
        targets = _targets()
        booking = (targets.booking, [country_code, party_id, request_id])
        stamp = (targets.stamp, [evse_uid, location_id])
        execute_prepared(cursor, [stamp, booking, *targets.calls(location_id, evse_uid)])
        stamps = cursor.fetchall()
        cursor.nextset()
        row = cursor.fetchone()
        cursor.nextset()
        rows = _read_rows(cursor)
    found = _targets_from(rows, location_id)
    _keep(location_id, evse_uid, stamps, rows, found)
    return (row[0] if row else None), *found
