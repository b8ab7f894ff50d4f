"""Seed demo data: three locations in three time zones, staff and admin logins, drivers, bookings
today and tomorrow, and 30 days of past bookings with their outcomes (the insights pages need a
history). Idempotent: running it again adds nothing that is already there."""

from __future__ import annotations

import json
import random
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from bookings.availability import grid_ceil, local_day_window
from bookings.exceptions import BookingError
from bookings.models import Booking, CanceledReason, Driver, DriverToken, TokenType
from bookings.services import (
    Actor,
    TokenData,
    booking_cancel,
    booking_create,
    booking_fulfil,
    booking_mark_no_show,
)
from locations.models import (
    EVSE,
    BookingPolicy,
    Capability,
    ChargePoint,
    Connector,
    ConnectorFormat,
    ConnectorStandard,
    EVSEStatus,
    Location,
    PowerType,
    PriceComponent,
    RegularHours,
    ReservationRestriction,
    Tariff,
    TariffDimension,
    TariffElement,
    TaxIncluded,
)
from locations.services import charge_point_set_password

PASSWORDS_FILE = "charger-passwords.json"  # under RUN_DIR; simulate_chargers --passwords reads it

AC22 = dict(standard=ConnectorStandard.IEC_62196_T2, format=ConnectorFormat.SOCKET,
            power_type=PowerType.AC_3_PHASE, max_voltage=400, max_amperage=32,
            max_electric_power=22000)  # fmt: skip
CCS2_150 = dict(standard=ConnectorStandard.IEC_62196_T2_COMBO, format=ConnectorFormat.CABLE,
                power_type=PowerType.DC, max_voltage=920, max_amperage=200,
                max_electric_power=150000)  # fmt: skip
CHADEMO_50 = dict(standard=ConnectorStandard.CHADEMO, format=ConnectorFormat.CABLE,
                  power_type=PowerType.DC, max_voltage=500, max_amperage=125,
                  max_electric_power=50000)  # fmt: skip
J1772 = dict(standard=ConnectorStandard.IEC_62196_T1, format=ConnectorFormat.CABLE,
             power_type=PowerType.AC_1_PHASE, max_voltage=240, max_amperage=32,
             max_electric_power=7700)  # fmt: skip
CCS1_350 = dict(standard=ConnectorStandard.IEC_62196_T1_COMBO, format=ConnectorFormat.CABLE,
                power_type=PowerType.DC, max_voltage=1000, max_amperage=500,
                max_electric_power=350000)  # fmt: skip
NACS_250 = dict(standard=ConnectorStandard.SAE_J3400, format=ConnectorFormat.CABLE,
                power_type=PowerType.DC, max_voltage=1000, max_amperage=250,
                max_electric_power=250000)  # fmt: skip

LOCATIONS = [
    {
        "ocpi_id": "AMS-CENTRAAL",
        "name": "Amsterdam Centraal P+R",
        "address": "Stationsplein 10",
        "city": "Amsterdam",
        "postal_code": "1012 AB",
        "country": "NLD",
        "latitude": Decimal("52.378901"),
        "longitude": Decimal("4.900272"),
        "time_zone": "Europe/Amsterdam",
        "twentyfourseven": True,
        "prefix": "AMS",
        # (ocpp version, [connector spec per EVSE])
        "charge_points": [
            ("1.6", [AC22, AC22]),
            ("1.6", [AC22, AC22]),
            ("2.0.1", [AC22, AC22]),
            ("2.0.1", [CCS2_150, CCS2_150]),
            ("2.0.1", [CCS2_150, CHADEMO_50]),
            ("1.6", [AC22, AC22]),
        ],
        "policy": {"slot_step_minutes": 15, "min_duration_minutes": 30,
                   "max_duration_minutes": 240, "buffer_minutes": 0},
    },
    {
        "ocpi_id": "NYC-HUDSON",
        "name": "Hudson Yards Garage",
        "address": "500 W 33rd St",
        "city": "New York",
        "postal_code": "10001",
        "state": "NY",
        "country": "USA",
        "latitude": Decimal("40.753597"),
        "longitude": Decimal("-74.001110"),
        "time_zone": "America/New_York",
        "twentyfourseven": False,
        "hours": [(d, time(6, 0), time(22, 0)) for d in range(1, 8)],
        "prefix": "NYC",
        "charge_points": [
            ("1.6", [J1772, J1772]),
            ("1.6", [J1772, J1772]),
            ("2.0.1", [CCS1_350, NACS_250]),
            ("2.0.1", [CCS1_350, NACS_250]),
        ],
        "policy": {"slot_step_minutes": 30, "min_duration_minutes": 30,
                   "max_duration_minutes": 180, "buffer_minutes": 10},
    },
    {
        "ocpi_id": "TYO-SHIBUYA",
        "name": "Shibuya Station East",
        "address": "2-24-12 Shibuya",
        "city": "Tokyo",
        "postal_code": "150-0002",
        "country": "JPN",
        "latitude": Decimal("35.658034"),
        "longitude": Decimal("139.701636"),
        "time_zone": "Asia/Tokyo",
        "twentyfourseven": False,
        "hours": [(d, time(7, 0), time(0, 0)) for d in range(1, 8)],
        "prefix": "TYO",
        "charge_points": [
            ("2.0.1", [CHADEMO_50, CHADEMO_50]),
            ("1.6", [J1772, J1772]),
            ("1.6", [AC22, AC22]),
        ],
        "policy": {"slot_step_minutes": 15, "min_duration_minutes": 15,
                   "max_duration_minutes": 120, "buffer_minutes": 5},
    },
]  # fmt: skip

# Past bookings per local hour of the day (6:00-21:00): commuter peaks on weekdays, a
# late-morning hump at weekends.
HISTORY_HOURS = list(range(6, 22))
HISTORY_WEEKDAY = [3, 8, 9, 6, 3, 2, 3, 3, 2, 3, 5, 8, 9, 6, 3, 2]
HISTORY_WEEKEND = [1, 1, 2, 4, 6, 7, 6, 5, 5, 4, 3, 3, 2, 2, 1, 1]

DRIVERS = [
    ("Anna de Vries", "anna@example.com", "04A1B2C3D4E5F6"),
    ("Ben Carter", "ben@example.com", "04B7C8D9E0F1A2"),
    ("Chiara Rossi", "chiara@example.com", "04C3D4E5F6A7B8"),
    ("Daiki Tanaka", "daiki@example.com", "04D9E0F1A2B3C4"),
    ("Eva Jansen", "eva@example.com", "04E5F6A7B8C9D0"),
]


class Command(BaseCommand):
    help = "Seed demo locations, chargers, staff and admin logins, drivers and bookings."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--passwords-file", default=None,
            help="where the demo chargers' passwords are kept for the simulator "
            "(default: RUN_DIR/charger-passwords.json)",
        )  # fmt: skip

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            users = self._users()
            drivers = self._drivers()
            locations = [self._location(spec) for spec in LOCATIONS]
            for location in locations:
                self._tariff(location)
        passwords = Path(options["passwords_file"] or settings.RUN_DIR / PASSWORDS_FILE)
        self._charger_passwords(locations, passwords)
        made = self._bookings(locations, drivers, users["staff"])
        with transaction.atomic():  # one commit for the whole history
            past = sum(self._history(location, drivers, users["staff"]) for location in locations)
        self.stdout.write(
            f"Demo data ready: {len(locations)} locations, "
            f"{EVSE.objects.count()} EVSEs, {made} new bookings, {past} past bookings; "
            f"the demo chargers' passwords are in {passwords}."
        )

    def _charger_passwords(self, locations: list[Location], path: Path) -> None:
        """Give every demo charge point a password, kept in `path` (private to this user) for
        the simulator: the csms refuses charge points without one. A charge point missing
        from the file (a new database, a deleted file) gets a new password."""
        known = json.loads(path.read_text()) if path.exists() else {}
        changed = False
        for cp in ChargePoint.objects.filter(location__in=locations).order_by("identity"):
            if cp.identity not in known or not cp.password_hash:
                known[cp.identity] = charge_point_set_password(charge_point=cp)
                changed = True
        if changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")

    def _users(self) -> dict:
        User = get_user_model()
        users = {}
        for username, password, superuser in [
            ("admin", "admin-demo", True),
            ("staff", "staff-demo", False),
        ]:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"is_staff": True, "is_superuser": superuser,
                          "email": f"{username}@example.com",
                          "first_name": "Site" if not superuser else "Admin"},
            )  # fmt: skip
            if created:
                user.set_password(password)
                user.save()
            users[username] = user
        return users

    def _drivers(self) -> list[Driver]:
        drivers = []
        for name, email, uid in DRIVERS:
            driver, _ = Driver.objects.get_or_create(email=email, defaults={"name": name})
            DriverToken.objects.get_or_create(
                country_code="NL", party_id="CBK", uid=uid, type=TokenType.RFID,
                defaults={"driver": driver, "contract_id": f"NL-CBK-C{uid[-8:]}"},
            )  # fmt: skip
            drivers.append(driver)
        return drivers

    def _location(self, spec: dict) -> Location:
        fields = {
            k: v
            for k, v in spec.items()
            if k not in {"prefix", "charge_points", "policy", "hours", "ocpi_id"}
        }
        location, created = Location.objects.get_or_create(ocpi_id=spec["ocpi_id"], defaults=fields)
        if not created:
            return location
        for weekday, begin, end in spec.get("hours", []):
            RegularHours.objects.create(
                location=location, weekday=weekday, period_begin=begin, period_end=end
            )
        BookingPolicy.objects.create(location=location, **spec["policy"])
        for n, (version, evses) in enumerate(spec["charge_points"], start=1):
            cp = ChargePoint.objects.create(
                location=location,
                identity=f"{spec['prefix']}-CP{n:02d}",
                ocpp_version=version,
                vendor="Demo",
                model="Sim 2" if version == "2.0.1" else "Sim 1",
            )
            for m, conn in enumerate(evses, start=1):
                uid = f"{spec['prefix']}-{n:02d}-{m}"
                evse = EVSE.objects.create(
                    charge_point=cp,
                    uid=uid,
                    evse_id=f"{spec['country'][:2]}*CBK*E{spec['prefix']}{n:02d}{m}",
                    ocpp_evse_id=m,
                    status=EVSEStatus.AVAILABLE,
                    capabilities=[Capability.RESERVABLE, Capability.RFID_READER,
                                  Capability.REMOTE_START_STOP_CAPABLE,
                                  # a socket's lock can be released; a cable has none
                                  *([Capability.UNLOCK_CAPABLE]
                                    if conn.get("format") == ConnectorFormat.SOCKET else [])],
                    physical_reference=f"{n}{chr(64 + m)}",
                )  # fmt: skip
                Connector.objects.create(evse=evse, connector_id="1", **conn)
        return location

    def _bookings(self, locations: list[Location], drivers: list[Driver], staff) -> int:
        """A few bookings today and tomorrow at each location, at local times that are free."""
        now = timezone.now()
        actor = Actor.staff(staff)
        made = 0
        for li, location in enumerate(locations):
            tz = location.zone
            policy = location.booking_policy
            step = timedelta(minutes=policy.slot_step_minutes)
            evses = list(
                EVSE.objects.of_location(location).order_by(
                    "charge_point__identity", "ocpp_evse_id"
                )
            )
            for day in (0, 1):
                local_day = (now + timedelta(days=day)).astimezone(tz).date()
                day_window = local_day_window(local_day, tz)
                seeded = Booking.objects.filter(
                    location=location, notes="demo",
                    period__overlap=(day_window.start, day_window.end),
                ).exists()  # fmt: skip
                if seeded:
                    continue
                base = grid_ceil(now + timedelta(days=day, minutes=30), step, tz)
                for k in range(4):
                    evse = evses[(k * 3 + day + li) % len(evses)]
                    start = base + timedelta(hours=k + day)
                    end = start + timedelta(minutes=max(60, policy.min_duration_minutes))
                    driver = drivers[(k + day + li) % len(drivers)]
                    try:
                        booking_create(
                            evse=evse, start=start, end=end, actor=actor, driver=driver,
                            notes="demo", now=now,
                        )  # fmt: skip
                        made += 1
                    except BookingError:
                        continue  # taken or closed then: the demo needs some, not these exactly
        return made

    # Per location: currency, tax %, price per kWh, start fee, idle fee per hour after 4 h of
    # charging, no-show fee (local money: the demo spans three currencies).
    TARIFFS = {
        "AMS-CENTRAAL": ("EUR", "21.00", "0.39", "0.35", "6.00", "7.50"),
        "NYC-HUDSON": ("USD", "8.875", "0.48", "1.00", "9.00", "10.00"),
        "TYO-SHIBUYA": ("JPY", "10.00", "55", "100", "900", "1000"),
    }

    def _tariff(self, location: Location) -> None:
        """A standard tariff per location: energy, a start fee, an idle fee after 4 hours, and
        a no-show fee for bookings (the booking terms say one is charged)."""
        spec = self.TARIFFS.get(location.ocpi_id)
        if spec is None or Tariff.objects.filter(ocpi_id=f"{location.ocpi_id}-STD").exists():
            return
        currency, tax, kwh, start_fee, idle, no_show = (spec[0], *map(Decimal, spec[1:]))
        tariff = Tariff.objects.create(
            ocpi_id=f"{location.ocpi_id}-STD", name=f"{location.name} standard",
            currency=currency, tax_included=TaxIncluded.YES, tax_percentage=tax,
            alt_text="Idle fee after 4 hours of charging; no-show fee for missed bookings.",
        )  # fmt: skip
        tariff.locations.add(location)
        energy = TariffElement.objects.create(tariff=tariff, position=0)
        PriceComponent.objects.create(element=energy, type=TariffDimension.ENERGY, price=kwh)
        PriceComponent.objects.create(element=energy, type=TariffDimension.FLAT, price=start_fee)
        idle_element = TariffElement.objects.create(
            tariff=tariff, position=1, min_duration=4 * 3600
        )
        PriceComponent.objects.create(
            element=idle_element, type=TariffDimension.TIME, price=idle, step_size=60
        )
        missed = TariffElement.objects.create(
            tariff=tariff, position=2, reservation=ReservationRestriction.RESERVATION_EXPIRES
        )
        PriceComponent.objects.create(element=missed, type=TariffDimension.FLAT, price=no_show)

    HISTORY_DAYS = 30
    DEMO_EMSP = ("DE", "XMS")

    def _history(self, location: Location, drivers: list[Driver], staff) -> int:
        """Past bookings over the last HISTORY_DAYS local days (commuter peaks on weekdays, a
        late-morning hump at weekends), made by staff and by a demo eMSP some hours or days
        ahead, then fulfilled, missed or canceled: each through the booking services with the
        clock of its time, so the audit trail reads as it happened."""
        if Booking.objects.filter(location=location, notes="demo history").exists():
            return 0
        rng = random.Random(location.ocpi_id)  # the same history on every machine
        evses = list(EVSE.objects.of_location(location).select_related("charge_point"))
        today = timezone.now().astimezone(location.zone).date()
        made = 0
        for back in range(self.HISTORY_DAYS, 0, -1):
            day = today - timedelta(days=back)
            weights = HISTORY_WEEKEND if day.weekday() >= 5 else HISTORY_WEEKDAY
            for evse in evses:
                for hour in rng.choices(HISTORY_HOURS, weights=weights, k=rng.choice((0, 1, 2, 2))):
                    start = datetime.combine(day, time(hour), tzinfo=location.zone)
                    made += self._past_booking(rng, evse, start, drivers, staff, n=made)
        return made

    def _past_booking(self, rng, evse: EVSE, start, drivers, staff, *, n: int) -> int:
        end = start + timedelta(minutes=rng.choice((60, 60, 90, 120)))
        made_at = start - timedelta(hours=rng.choice((0.5, 2, 5, 20, 30, 60, 120)))
        if rng.random() < 0.35:  # an eMSP's app user, with the eMSP's own token and request id
            actor, driver = Actor.emsp(*self.DEMO_EMSP), None
            request_id = f"demo-{n}-{evse.uid}-{start:%Y%m%d%H}"
            tokens = [TokenData(*self.DEMO_EMSP, f"DEMO{n:05d}", "APP_USER", f"DE-XMS-C{n:08d}")]
        else:
            actor, driver, request_id, tokens = Actor.staff(staff), rng.choice(drivers), "", []
        try:
            booking = booking_create(
                evse=evse, start=start, end=end, now=made_at, notes="demo history",
                actor=actor, driver=driver, tokens=tokens, request_id=request_id,
            )  # fmt: skip
        except BookingError:
            return 0  # taken or closed then
        Booking.objects.filter(pk=booking.pk).update(created_at=made_at)
        fate = rng.random()
        if fate < 0.14:
            booking_cancel(booking=booking, actor=actor, reason=CanceledReason.TRAFFIC,
                           now=made_at + (start - made_at) / 3)  # fmt: skip
        elif fate < 0.24:
            booking_mark_no_show(booking=booking, now=end + timedelta(hours=1))
        else:
            arrived = start + timedelta(minutes=rng.randrange(0, 10))
            booking_fulfil(booking=booking, actor=Actor.charger(evse.charge_point.identity),
                           at=arrived, now=arrived)  # fmt: skip
        return 1
