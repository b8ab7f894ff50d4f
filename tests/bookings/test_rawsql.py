"""The constant-SQL statements of the booking write path write and load exactly what the ORM
would: every field of a new booking, its tokens and audit row; a location and EVSE with the
relations the rules read, so checking a slot afterwards runs no query."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import IntegrityError, connection, transaction

from bookings import rawsql
from bookings.models import (
    Booking,
    BookingRequest,
    BookingToken,
    BookingTransition,
    RequestStatus,
    Status,
    tstzrange,
)
from bookings.selectors import opening_hours_of
from bookings.services import Actor, _audit_row, check_slot
from locations.models import EVSE, ExceptionalPeriod, Location
from locations.selectors import policy_for
from tests.bookings.factories import BookingFactory
from tests.locations.factories import (
    BookingPolicyFactory,
    ConnectorFactory,
    EVSEFactory,
    ExceptionalPeriodFactory,
    LocationFactory,
    RegularHoursFactory,
)

pytestmark = pytest.mark.django_db

START = datetime(2026, 6, 2, 8, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 6, tzinfo=UTC)


@pytest.fixture
def site():
    location = LocationFactory(ocpi_id="LOC-Raw", twentyfourseven=False)
    BookingPolicyFactory(location=location, buffer_minutes=10)
    for weekday in range(1, 8):
        RegularHoursFactory(location=location, weekday=weekday, period_begin=time(6),
                            period_end=time(22))  # fmt: skip
    ExceptionalPeriodFactory(location=location, period_begin=START + timedelta(days=3),
                             period_end=START + timedelta(days=4))  # fmt: skip
    evse = EVSEFactory(charge_point__location=location, uid="EVSE-RAW")
    ConnectorFactory(evse=evse, connector_id="2", dc=True)
    BookingPolicyFactory(location=None, evse=evse, max_duration_minutes=60)
    return location


def _new_booking(location: Location, evse: EVSE, request_id: str = "R-1") -> Booking:
    return Booking(
        location=location, evse=evse, connector=evse.connectors.order_by("id").first(),
        period=tstzrange(START, START + timedelta(hours=1)),
        blocked_period=tstzrange(START, START + timedelta(hours=1, minutes=10)),
        status=Status.RESERVED, channel=Booking.Channel.OCPI, emsp_country_code="DE",
        emsp_party_id="EMS", request_id=request_id, authorization_reference="AUTH",
        power_required_kw=11, terms={"cancel_until_minutes": 15, "x": [1, "two"]},
        access_methods=[{"location_access": "OPEN"}], notes="note",
    )  # fmt: skip


def test_insert_booking_writes_every_field_tokens_and_audit(site):
    evse = EVSE.objects.get(uid="EVSE-RAW")
    booking = _new_booking(site, evse)
    tokens = [BookingToken(country_code="DE", party_id="EMS", uid=f"T{n}", type="RFID",
                           contract_id=f"C{n}") for n in range(3)]  # fmt: skip
    audit = BookingTransition(
        booking=booking, event=BookingTransition.Event.CREATED, to_status=Status.RESERVED,
        at=NOW, actor_type=Actor.system().type, actor_label="test", details={"a": 1},
    )  # fmt: skip
    rawsql.insert_booking(booking, tokens=tokens, audit=audit)
    stored = Booking.objects.get(pk=booking.pk)
    for field in Booking._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(booking, field.attname), field.name
    assert stored.created_at is not None and stored.last_updated is not None
    assert list(stored.tokens.values_list("pk", "uid")) == [(t.pk, t.uid) for t in tokens]
    assert [t.booking_id for t in tokens] == [booking.pk] * 3
    (row,) = stored.transitions.all()
    assert (row.pk, row.event, row.details, row.actor_label) == (
        audit.pk,
        "CREATED",
        {"a": 1},
        "test",
    )


def test_insert_booking_writes_awkward_values_and_the_request_exactly(site):
    # Rows travel as JSON read by jsonb_populate_record: quotes, backslashes, percent signs,
    # non-ASCII text, microseconds and offsets come back as they went in.
    evse = EVSE.objects.get(uid="EVSE-RAW")
    booking = _new_booking(site, evse, request_id="R-'\\%s\"ü")
    booking.notes = 'It\'s 100% "quoted" \\ back\\slash, naïve ☃ emoji 🚗\nnew line'
    booking.terms = {"nested": {"deep": ["é", 1.5, None, True]}, "quote": "'\""}
    booking.period = tstzrange(START + timedelta(microseconds=7), START + timedelta(hours=1))
    booking.blocked_period = booking.period
    audit = BookingTransition(
        booking=booking, event="CREATED", to_status="RESERVED", at=NOW, actor_type="SYSTEM",
        reason="%(x)s {0} '; DROP TABLE x; --",
    )  # fmt: skip
    request = BookingRequest(
        request_status=RequestStatus.ACCEPTED, payload={"a": "\u00e9\\", "n": [1, {"b": None}]},
        received_at=NOW, decided_at=NOW + timedelta(microseconds=1), reason="ok",
    )  # fmt: skip
    rawsql.insert_booking(booking, tokens=[], audit=audit, request=request)
    stored = Booking.objects.get(pk=booking.pk)
    for field in Booking._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(booking, field.attname), field.name
    stored_request = BookingRequest.objects.get(pk=request.pk)
    for field in BookingRequest._meta.concrete_fields:
        assert getattr(stored_request, field.attname) == getattr(request, field.attname)
    assert BookingTransition.objects.get(pk=audit.pk).reason == audit.reason


def test_insert_booking_writes_json_that_orjson_leaves_to_the_standard_encoder(site):
    # An integer beyond 64 bits and a key that is not a string: written as json.dumps (and so
    # the ORM) writes them.
    evse = EVSE.objects.get(uid="EVSE-RAW")
    booking = _new_booking(site, evse, request_id="R-BIG")
    booking.terms = {"big": 2**70, 7: "seven"}
    audit = BookingTransition(
        booking=booking, event="CREATED", to_status="RESERVED", at=NOW, actor_type="SYSTEM"
    )
    request = BookingRequest(
        request_status=RequestStatus.ACCEPTED, payload={"n": -(2**80)}, received_at=NOW
    )
    rawsql.insert_booking(booking, tokens=[], audit=audit, request=request)
    assert Booking.objects.get(pk=booking.pk).terms == {"big": 2**70, "7": "seven"}
    assert BookingRequest.objects.get(pk=request.pk).payload == {"n": -(2**80)}


def test_insert_booking_is_all_or_nothing_under_the_exclusion_constraint(site):
    evse = EVSE.objects.get(uid="EVSE-RAW")
    BookingFactory(evse=evse, location=site, period=tstzrange(START, START + timedelta(hours=2)))
    before = (Booking.objects.count(), BookingToken.objects.count(),
              BookingTransition.objects.count())  # fmt: skip
    booking = _new_booking(site, evse, request_id="R-2")
    audit = BookingTransition(booking=booking, event="CREATED", to_status="RESERVED", at=NOW,
                              actor_type="SYSTEM")  # fmt: skip
    token = BookingToken(country_code="DE", party_id="EMS", uid="T", type="RFID", contract_id="C")
    with pytest.raises(IntegrityError), transaction.atomic():
        rawsql.insert_booking(booking, tokens=[token], audit=audit)
    after = (Booking.objects.count(), BookingToken.objects.count(),
             BookingTransition.objects.count())  # fmt: skip
    assert after == before


def test_insert_row_sets_the_pk_and_every_field(site):
    booking = BookingFactory(evse=EVSE.objects.get(uid="EVSE-RAW"))
    request = BookingRequest(booking=booking, request_status=RequestStatus.ACCEPTED,
                             payload={"k": ["v"]}, received_at=NOW, decided_at=NOW)  # fmt: skip
    rawsql.insert_row(request)
    stored = BookingRequest.objects.get(pk=request.pk)
    for field in BookingRequest._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(request, field.attname), field.name


def test_request_targets_loads_what_the_orm_loads_then_no_query(site, django_assert_num_queries):
    rawsql.request_targets(location_id="NOPE", evse_uid="")  # prepares its statements once
    with django_assert_num_queries(1):
        location, evse = rawsql.request_targets(location_id="loc-raw", evse_uid="EVSE-RAW")
    expected = Location.objects.with_rules().get(pk=site.pk)
    expected_evse = EVSE.objects.select_related("charge_point", "booking_policy").get(
        uid="EVSE-RAW"
    )
    with django_assert_num_queries(0):
        for field in Location._meta.concrete_fields:
            assert getattr(location, field.attname) == getattr(expected, field.attname)
        for field in EVSE._meta.concrete_fields:
            assert getattr(evse, field.attname) == getattr(expected_evse, field.attname)
        assert evse.charge_point.pk == expected_evse.charge_point.pk
        assert evse.charge_point.location is location
        assert location.booking_policy.pk == expected.booking_policy.pk
        assert policy_for(evse, location).pk == expected_evse.booking_policy.pk
        assert [c.connector_id for c in evse.connectors.all()] == ["1", "2"]
        assert opening_hours_of(location) == opening_hours_of(expected)
        assert len(opening_hours_of(location).regular) == 7
        check_slot(evse=evse, start=START, end=START + timedelta(hours=1), now=NOW,
                   location=location, check_overlap=False)  # fmt: skip
    assert ExceptionalPeriod.objects.filter(location=site).count() == 1


def test_request_targets_without_policies_falls_back_to_defaults(django_assert_num_queries):
    location = LocationFactory(ocpi_id="BARE")
    EVSEFactory(charge_point__location=location, uid="E-BARE")
    found, evse = rawsql.request_targets(location_id="BARE", evse_uid="E-BARE")
    with django_assert_num_queries(0):
        assert policy_for(evse, found).pk is None  # the defaults, not a query


def test_request_targets_unknown_location_or_evse_elsewhere(site):
    other = LocationFactory(ocpi_id="OTHER")
    EVSEFactory(charge_point__location=other, uid="E-OTHER")
    assert rawsql.request_targets(location_id="NOPE", evse_uid="EVSE-RAW") == (None, None)
    location, evse = rawsql.request_targets(location_id="LOC-RAW", evse_uid="E-OTHER")
    assert location.pk == site.pk and evse is None


def test_token_clash_pairs_uid_with_country_and_skips_the_excluded_booking(site):
    booking = BookingFactory(
        evse=EVSE.objects.get(uid="EVSE-RAW"), period=tstzrange(START, START + timedelta(hours=1))
    )
    BookingToken.objects.create(booking=booking, country_code="DE", party_id="EMS", uid="T1",
                                type="RFID", contract_id="C1")  # fmt: skip
    window = {"start": START + timedelta(minutes=30), "end": START + timedelta(hours=2)}
    assert rawsql.token_clash(uids=["T1"], country_codes=["DE"], exclude_booking_id=None,
                              **window)  # fmt: skip
    assert not rawsql.token_clash(uids=["T1"], country_codes=["FR"], exclude_booking_id=None,
                                  **window)  # fmt: skip
    assert not rawsql.token_clash(uids=["T1"], country_codes=["DE"],
                                  exclude_booking_id=booking.pk, **window)  # fmt: skip
    later = {"start": START + timedelta(hours=1), "end": START + timedelta(hours=2)}
    assert not rawsql.token_clash(uids=["T1"], country_codes=["DE"], exclude_booking_id=None,
                                  **later)  # fmt: skip


# The rules stamp (migration 0009): what lets a process decide a BookingRequest on the location
# and EVSE rows it read for an earlier one (rawsql.cached_targets).


def _stamp(location: Location, evse: EVSE | None) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bookings_rules_stamp(%s, %s)", [location.pk, evse.pk if evse else None]
        )
        return cursor.fetchone()[0]


@pytest.fixture
def rules_site():
    location = LocationFactory(twentyfourseven=False)
    RegularHoursFactory(location=location, weekday=1, period_begin="08:00", period_end="20:00")
    BookingPolicyFactory(location=location)
    evse = EVSEFactory(charge_point__location=location)
    ConnectorFactory(evse=evse)
    other = EVSEFactory(charge_point=evse.charge_point, ocpp_evse_id=2)
    return location, evse, other


def _update(obj, **values):
    type(obj).objects.filter(pk=obj.pk).update(**values)


CHANGES = {
    "location": lambda loc, evse: _update(loc, publish=False),
    "location saved unchanged": lambda loc, evse: Location.objects.get(pk=loc.pk).save(),
    "location policy": lambda loc, evse: _update(loc.booking_policy, max_duration_minutes=60),
    "location policy removed": lambda loc, evse: loc.booking_policy.delete(),
    "regular hours added": lambda loc, evse: RegularHoursFactory(
        location=loc, weekday=2, period_begin="08:00", period_end="20:00"
    ),
    "regular hours changed": lambda loc, evse: loc.regular_hours.update(period_end="18:00"),
    "regular hours removed": lambda loc, evse: loc.regular_hours.all().delete(),
    "exceptional closing": lambda loc, evse: ExceptionalPeriodFactory(
        location=loc,
        kind=ExceptionalPeriod.Kind.CLOSING,
        period_begin=START,
        period_end=START + timedelta(hours=2),
    ),
    "evse": lambda loc, evse: _update(evse, booking_enabled=False),
    "evse status": lambda loc, evse: _update(evse, status="OUTOFORDER"),
    "charge point": lambda loc, evse: _update(evse.charge_point, is_connected=False),
    "evse policy": lambda loc, evse: BookingPolicyFactory(location=None, evse=evse),
    "connector changed": lambda loc, evse: evse.connectors.update(max_electric_power=7400),
    "connector added": lambda loc, evse: ConnectorFactory(evse=evse, connector_id="2"),
    "connector removed": lambda loc, evse: evse.connectors.all().delete(),
}


@pytest.mark.parametrize("change", CHANGES)
def test_rules_stamp_changes_with_every_row_a_decision_reads(rules_site, change):
    # In the test's one transaction, as a row updated by the transaction that read it: xmin
    # alone would not change then, the row version's place (ctid) does.
    location, evse, _ = rules_site
    before = _stamp(location, evse)
    CHANGES[change](location, evse)
    assert _stamp(location, evse) != before


def test_rules_stamp_ignores_what_the_decision_does_not_read(rules_site):
    location, evse, other = rules_site
    before = _stamp(location, evse)
    _update(other, booking_enabled=False)  # another EVSE of the location
    BookingPolicyFactory(location=None, evse=other)
    LocationFactory()
    # A booking on the EVSE: its foreign key check locks the EVSE row, which is no change.
    rawsql_booking = BookingFactory.build(evse=evse, location=location)
    rawsql.insert_booking(rawsql_booking, tokens=[], audit=_audit_for(rawsql_booking))
    assert _stamp(location, evse) == before


def _audit_for(booking: Booking) -> BookingTransition:
    return _audit_row(
        booking, event=BookingTransition.Event.CREATED, from_status="", actor=Actor.system("test"),
        now=NOW,
    )  # fmt: skip


def test_a_write_with_an_outdated_rules_stamp_writes_nothing(rules_site):
    location, evse, _ = rules_site
    stamp = rawsql.RulesStamp(location.pk, evse.pk, _stamp(location, evse))
    _update(location.booking_policy, max_duration_minutes=60)
    booking = BookingFactory.build(evse=evse, location=location)
    with pytest.raises(Exception) as refused, transaction.atomic():
        rawsql.insert_booking(booking, tokens=[], audit=_audit_for(booking), rules=stamp)
    assert refused.value.__cause__.diag.constraint_name == rawsql.RULES_STAMP
    assert not Booking.objects.filter(evse=evse).exists()
    fresh = rawsql.RulesStamp(location.pk, evse.pk, _stamp(location, evse))
    rawsql.insert_booking(booking, tokens=[], audit=_audit_for(booking), rules=fresh)
    assert Booking.objects.filter(evse=evse).count() == 1


def test_kept_targets_are_fresh_instances_of_the_rows_read(rules_site):
    location, evse, _ = rules_site
    rawsql.forget_targets(location_id=location.ocpi_id, evse_uid=evse.uid)
    assert rawsql.cached_targets(location_id=location.ocpi_id, evse_uid=evse.uid) is None
    _, read_location, read_evse = rawsql.request_lookup(
        country_code="DE", party_id="XMS", request_id="R", location_id=location.ocpi_id.lower(),
        evse_uid=evse.uid,
    )  # fmt: skip
    first = rawsql.cached_targets(location_id=location.ocpi_id, evse_uid=evse.uid)
    second = rawsql.cached_targets(location_id=location.ocpi_id, evse_uid=evse.uid)
    assert first is not None and second is not None
    (loc1, evse1, stamp), (loc2, evse2, _) = first, second
    assert stamp == rawsql.RulesStamp(location.pk, evse.pk, _stamp(location, evse))
    assert (loc1, evse1) == (read_location, read_evse) and loc1 is not loc2 and evse1 is not evse2
    # Nothing one request does to its instances reaches the next one's.
    evse1.capabilities.append("CHANGED")
    loc1.booking_policy.max_duration_minutes = 1
    assert "CHANGED" not in evse2.capabilities
    assert loc2.booking_policy.max_duration_minutes == location.booking_policy.max_duration_minutes
    assert [c.pk for c in evse2.connectors.all()] == [c.pk for c in evse.connectors.all()]


def test_unknown_locations_and_evses_are_not_kept(rules_site):
    location = rules_site[0]
    for location_id, evse_uid in [("NOPE", ""), (location.ocpi_id, "NO-SUCH-EVSE")]:
        rawsql.request_lookup(
            country_code="DE", party_id="XMS", request_id="R", location_id=location_id,
            evse_uid=evse_uid,
        )  # fmt: skip
        assert rawsql.cached_targets(location_id=location_id, evse_uid=evse_uid) is None


def test_blocked_period_microseconds_follow_the_period_exactly():
    # What the availability read takes instead of the range (migration 0010): the bounds in
    # epoch microseconds, exact to the microsecond, also after the booking moves.
    from bookings.availability import to_us

    lo = datetime(2026, 10, 25, 0, 59, 59, 999_999, tzinfo=UTC)  # the night the clocks go back
    booking = BookingFactory(start=lo, duration=timedelta(hours=2))
    moved = tstzrange(lo + timedelta(days=400, microseconds=1), lo + timedelta(days=401))
    for period in (booking.blocked_period, moved):
        Booking.objects.filter(pk=booking.pk).update(period=period, blocked_period=period)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT blocked_from_us, blocked_until_us FROM bookings_booking WHERE id = %s",
                [booking.pk],
            )
            assert cursor.fetchone() == (to_us(period.lower), to_us(period.upper))
