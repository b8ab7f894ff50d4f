"""Seed demo data: three locations in three time zones, staff and admin logins, drivers, and
bookings today and tomorrow. Idempotent: running it again adds nothing that is already there."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from bookings.availability import grid_ceil, local_day_window
from bookings.exceptions import BookingError
from bookings.models import Booking, Driver, DriverToken, TokenType
from bookings.services import Actor, booking_create
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
    RegularHours,
)

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

DRIVERS = [
    ("Anna de Vries", "anna@example.com", "04A1B2C3D4E5F6"),
    ("Ben Carter", "ben@example.com", "04B7C8D9E0F1A2"),
    ("Chiara Rossi", "chiara@example.com", "04C3D4E5F6A7B8"),
    ("Daiki Tanaka", "daiki@example.com", "04D9E0F1A2B3C4"),
    ("Eva Jansen", "eva@example.com", "04E5F6A7B8C9D0"),
]


class Command(BaseCommand):
    help = "Seed demo locations, chargers, staff and admin logins, drivers and bookings."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            users = self._users()
            drivers = self._drivers()
            locations = [self._location(spec) for spec in LOCATIONS]
        made = self._bookings(locations, drivers, users["staff"])
        self.stdout.write(
            f"Demo data ready: {len(locations)} locations, "
            f"{EVSE.objects.count()} EVSEs, {made} new bookings."
        )

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
                                  Capability.REMOTE_START_STOP_CAPABLE],
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
