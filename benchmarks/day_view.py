"""Benchmark: the staff day view of a 50-EVSE location with 300 bookings that day, its
needs-attention list, and its insights page and arrivals list over 30 days of history (6
bookings per EVSE a day, 9,000 in all).

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python benchmarks/day_view.py

Creates (and drops afterwards) its own scratch database on the DATABASE_URL server, named
`bench_<your db>` or BENCH_DATABASE when set (so that runs side by side can use their own),
seeds the location, then times full-page GETs of the day view (and the htmx poll partial and
the week view, and the needs-attention count their toolbar loads after them) through Django's
test client, in-process: server time without the network.
Prints p50/p95 in milliseconds and the number of SQL queries per request, and the same for a
poll that finds nothing changed (answered 204 from the grid's version).
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from datetime import datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import (  # noqa: E402
    override_settings,
    setup_databases,
    teardown_databases,
)

EVSES = 50
BOOKINGS = 300
WARMUP = 20
RUNS = int(os.environ.get("BENCH_RUNS", "200"))


def seed():
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from bookings.models import Booking, Driver, DriverToken, Status, tstzrange
    from locations.models import (
        EVSE,
        BookingPolicy,
        Capability,
        ChargePoint,
        Connector,
        ConnectorFormat,
        ConnectorStandard,
        Location,
        PowerType,
    )

    location = Location.objects.create(
        ocpi_id="BENCH-50", name="Benchmark Plaza", address="Benchstraat 1", city="Utrecht",
        country="NLD", latitude=Decimal("52.09"), longitude=Decimal("5.12"),
        time_zone="Europe/Amsterdam",
    )  # fmt: skip
    BookingPolicy.objects.create(location=location, slot_step_minutes=15, buffer_minutes=0)
    evses = []
    for n in range(EVSES // 2):
        cp = ChargePoint.objects.create(
            location=location, identity=f"BENCH-CP{n:02d}", is_connected=n % 7 != 0
        )
        for m in (1, 2):
            evses.append(
                EVSE(
                    charge_point=cp,
                    uid=f"BENCH-{n:02d}-{m}",
                    ocpp_evse_id=m,
                    status="AVAILABLE",
                    capabilities=[Capability.RESERVABLE],
                    physical_reference=f"{n + 1}{'AB'[m - 1]}",
                )
            )
    EVSE.objects.bulk_create(evses)
    Connector.objects.bulk_create(
        Connector(evse=e, connector_id="1", standard=ConnectorStandard.IEC_62196_T2_COMBO
                  if i % 3 == 0 else ConnectorStandard.IEC_62196_T2,
                  format=ConnectorFormat.CABLE, power_type=PowerType.DC if i % 3 == 0
                  else PowerType.AC_3_PHASE, max_voltage=400, max_amperage=32,
                  max_electric_power=150000 if i % 3 == 0 else 22000)
        for i, e in enumerate(evses)
    )  # fmt: skip
    drivers = Driver.objects.bulk_create(
        Driver(name=f"Driver {i:03d}", email=f"d{i}@example.com") for i in range(60)
    )
    DriverToken.objects.bulk_create(
        DriverToken(driver=d, country_code="NL", party_id="CBK", uid=f"04{i:012X}",
                    contract_id=f"NL-CBK-C{i:08d}")
        for i, d in enumerate(drivers)
    )  # fmt: skip
    # Tomorrow (local): the whole day is ahead, so every row has free time to compute too.
    day = timezone.now().astimezone(location.zone).date() + timedelta(days=1)
    per_evse = BOOKINGS // EVSES  # 6 bookings of 1-2 h per EVSE, spread over the day
    bookings = []
    for i, evse in enumerate(evses):
        for k in range(per_evse):
            start = datetime.combine(day, dtime(1 + k * 4, (i % 4) * 15), location.zone)
            end = start + timedelta(minutes=60 + 15 * (i % 5))
            bookings.append(
                Booking(
                    location=location,
                    evse=evse,
                    period=tstzrange(start, end),
                    blocked_period=tstzrange(start, end),
                    status=Status.RESERVED if (i + k) % 5 else Status.PENDING,
                    channel=Booking.Channel.STAFF,
                    driver=drivers[(i * per_evse + k) % len(drivers)],
                    authorization_reference=f"BENCH{i:03d}{k}",
                )
            )
    Booking.objects.bulk_create(bookings)
    user = get_user_model().objects.create_user(username="bench", password="x", is_staff=True)
    return location, day, user


HISTORY_DAYS = 30


def seed_history(location) -> int:
    """Six past bookings per EVSE per day over HISTORY_DAYS days, in every outcome and channel."""
    from django.utils import timezone

    from bookings.models import Booking, CanceledReason, Role, Status, tstzrange
    from locations.models import EVSE

    today = timezone.now().astimezone(location.zone).date()
    outcomes = [Status.FULFILLED] * 7 + [Status.NO_SHOW, Status.CANCELED, Status.REJECTED]
    rows = []
    for back in range(1, HISTORY_DAYS + 1):
        day = today - timedelta(days=back)
        for i, evse in enumerate(EVSE.objects.of_location(location).order_by("id")):
            for k in range(6):
                start = datetime.combine(day, dtime(6 + k * 2 + i % 2, (i % 4) * 15), location.zone)
                end = start + timedelta(minutes=60 + 15 * (i % 4))
                status = outcomes[(i + k + back) % len(outcomes)]
                canceled = status == Status.CANCELED
                ocpi = (i + k) % 3 == 0
                rows.append(
                    Booking(
                        location=location, evse=evse, period=tstzrange(start, end),
                        blocked_period=tstzrange(start, end), status=status,
                        channel=Booking.Channel.OCPI if ocpi else Booking.Channel.STAFF,
                        emsp_country_code="DE" if ocpi else "", emsp_party_id="XMS" if ocpi else "",
                        request_id=f"H{back}-{i}-{k}" if ocpi else "",
                        fulfilled_at=start if status == Status.FULFILLED else None,
                        canceled_at=start - timedelta(hours=2) if canceled else None,
                        canceled_reason=CanceledReason.TRAFFIC if canceled else "",
                        canceled_by_role=Role.CPO if canceled else "",
                        authorization_reference=f"H{back:02d}{i:02d}{k}",
                    )
                )  # fmt: skip
    Booking.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def measure(client, url: str, headers: dict | None = None, status: int = 200):
    headers = headers or {}
    for _ in range(WARMUP):
        assert client.get(url, headers=headers, secure=True).status_code == status
    queries = []  # counted with an execute wrapper: the debug query log may be full already

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(url, headers=headers, secure=True)
    wall, cpu = [], []
    for _ in range(RUNS):
        t0, c0 = time.perf_counter(), time.process_time()
        client.get(url, headers=headers, secure=True)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu, len(queries), len(response.content)


def report(name: str, wall: list[float], cpu: list[float], queries: int, size: int) -> None:
    wall.sort()
    p95 = wall[int(len(wall) * 0.95) - 1]
    print(
        f"{name:<30} p50 {statistics.median(wall):6.1f} ms  p95 {p95:6.1f} ms  "
        f"(CPU p50 {statistics.median(cpu):5.1f} ms)  {queries:2d} queries  "
        f"{size / 1024:4.0f} KiB"
    )


def machine_reference_s() -> float:
    """CPU seconds for sum(range(10**7)): a yardstick to compare runs on different machines."""
    t0 = time.process_time()
    sum(range(10**7))
    return time.process_time() - t0


def main() -> None:
    from django.test import Client
    from django.urls import reverse

    from bookings.models import Booking

    # No setup_test_environment(): its template instrumentation (for assertTemplateUsed)
    # copies every context and would be most of what gets measured.
    connection.settings_dict.setdefault("TEST", {})
    scratch = os.environ.get("BENCH_DATABASE") or f"bench_{connection.settings_dict['NAME']}"
    connection.settings_dict["TEST"]["NAME"] = scratch
    old = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        with override_settings(
            STORAGES={
                **settings.STORAGES,
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            },
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            ALLOWED_HOSTS=["testserver"],
        ):
            location, day, user = seed()
            client = Client()
            client.force_login(user)
            day_url = reverse("bookings:location_day", args=[location.pk]) + f"?date={day}"
            week_url = reverse("bookings:location_week", args=[location.pk]) + f"?date={day}"
            in_window = Booking.objects.filter(location=location).count()
            print(f"Day view benchmark: {EVSES} EVSEs, {in_window} bookings on {day} "
                  f"({location.time_zone}), {RUNS} runs after {WARMUP} warm-up, "
                  f"in-process test client; load average {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} CPUs")  # fmt: skip
            print(f"machine yardstick: sum(range(10**7)) = {machine_reference_s():.2f} s CPU")
            report("day view (full page)", *measure(client, day_url))
            report(
                "day view (htmx poll, #grid)",
                *measure(client, day_url, {"HX-Request": "true", "HX-Target": "grid"}),
            )
            report("week view (full page)", *measure(client, week_url))
            # A poll that finds nothing changed: the grid's version still current, 204.
            page = client.get(day_url, secure=True).content.decode()
            version = re.search(r'"X-Grid-Version": "([0-9a-f]+)"', page).group(1)
            seen = re.search(r'data-desk-seen="([^"]*)"', page).group(1)
            poll = {"HX-Request": "true", "HX-Target": "grid", "X-Grid-Version": version,
                    "X-Desk-Seen": seen}  # fmt: skip
            report("htmx poll, nothing changed", *measure(client, day_url, poll, status=204))
            attention = reverse("bookings:attention", args=[location.pk])
            report("needs attention", *measure(client, attention))
            # The count on the views' "Needs attention" link: its own htmx request after the page.
            count = reverse("bookings:attention_count", args=[location.pk])
            report("needs attention count", *measure(client, count, {"HX-Request": "true"}))
            history = seed_history(location)
            print(f"insights: {history} past bookings over {HISTORY_DAYS} days")
            insights = reverse("bookings:location_insights", args=[location.pk])
            report("insights, last 7 days", *measure(client, insights + "?days=7"))
            report("insights, last 30 days", *measure(client, insights + "?days=30"))
            # The arrivals and departures of the busy day, with the 30 days of history behind.
            arrivals = reverse("bookings:arrivals", args=[location.pk])
            report("arrivals (busy day)", *measure(client, arrivals + f"?date={day}"))
            yesterday = day - timedelta(days=2)
            report("arrivals (a past day)", *measure(client, arrivals + f"?date={yesterday}"))
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
