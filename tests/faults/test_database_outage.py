"""The database goes away while eMSPs book (issue 18): every connection is cut and new ones are
refused for two seconds, as during a PostgreSQL restart or failover. The web answers 503 with
Retry-After meanwhile (never a 500), serves again once the database is back without being
restarted, every booking answered RESERVED is there afterwards, and a request answered 503 sent
again is applied once: no booking is lost, doubled or half-written."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from django.db import connection

from tests.faults.conftest import start_web, wait_until
from tests.faults.database import test_database_url
from tests.locations.factories import BookingPolicyFactory, EVSEFactory, LocationFactory
from tests.ocpi.factories import PartyFactory

pytestmark = pytest.mark.django_db(transaction=True)


class Outage:
    """Cuts the test database off: refuses new connections and ends every open one but the
    test's own, until `end()`."""

    def __init__(self) -> None:
        self.name = connection.settings_dict["NAME"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.own = cursor.fetchone()[0]
        admin = test_database_url().rsplit("/", 1)[0] + "/postgres"
        self.admin = psycopg.connect(admin, autocommit=True)

    def begin(self) -> None:
        self.admin.execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false')
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> %s",
            [self.name, self.own],
        )

    def end(self) -> None:
        self.admin.execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true')

    def close(self) -> None:
        self.end()
        self.admin.close()


def body(n: int, start: datetime) -> dict:
    z = "%Y-%m-%dT%H:%M:%SZ"
    return {"country_code": "DE", "party_id": "XMS", "request_id": f"CUT-{n}",
            "location_id": "LOC-CUT", "evse_uid": f"EVSE-C{n % 4 + 1}",
            "tokens": [{"country_code": "DE", "party_id": "XMS", "uid": f"T{n}", "type": "RFID",
                        "contract_id": f"DE-XMS-C{n:08d}"}],
            "period": {"start_from": start.strftime(z),
                       "end_before": (start + timedelta(hours=1)).strftime(z)},
            "authorization_reference": f"A{n}"}  # fmt: skip


def test_the_database_going_away_during_posts_loses_nothing_and_the_web_recovers(
    processes, redis_server
):
    location = LocationFactory(ocpi_id="LOC-CUT")
    BookingPolicyFactory(location=location, slot_step_minutes=15, horizon_days=30)
    for n in range(1, 5):
        EVSEFactory(charge_point__location=location, uid=f"EVSE-C{n}")
    # As many requests as four busy clients send: no rate limit in the way.
    party = PartyFactory(country_code="DE", party_id="XMS", rate_limit_per_minute=1_000_000)
    base = start_web(processes, redis_server.url)
    outage = Outage()

    day = datetime.now(UTC).date() + timedelta(days=2)
    first = datetime(day.year, day.month, day.day, tzinfo=UTC)
    answers: dict[int, httpx.Response | Exception] = {}
    counter = iter(range(10_000))
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": party.auth}, timeout=30) as h:
            while not stop.is_set():
                with lock:
                    n = next(counter)
                start = first + timedelta(hours=n // 4)  # four EVSEs, one slot each an hour
                try:
                    answers[n] = h.post("/ocpi/cpo/2.3.0/bookings", json=body(n, start))
                except httpx.HTTPError as error:
                    answers[n] = error

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(answers) >= 20, 30, "bookings before the outage")
        outage.begin()
        time.sleep(2)  # the database is away
        during = len(answers)
        outage.end()
        wait_until(lambda: len(answers) >= during + 20, 60, "bookings after it came back")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        outage.close()

    statuses = {}
    for n, answer in answers.items():
        assert not isinstance(answer, Exception), f"request {n}: {answer!r}"
        statuses[n] = answer.status_code
        assert answer.status_code in (200, 201, 503), (n, answer.status_code, answer.text[:300])
        if answer.status_code == 503:
            assert answer.json()["status_code"] == 3000 and answer.headers["Retry-After"]
    unavailable = [n for n, status in statuses.items() if status == 503]
    reserved = [n for n, status in statuses.items() if status != 503]
    assert unavailable, "no request saw the database go away"
    assert max(reserved) > max(unavailable), "the web did not serve again afterwards"
    assert all(answers[n].json()["data"]["reservation_status"] == "RESERVED" for n in reserved)

    # What was refused is sent again, as the eMSP does: each is applied once.
    with httpx.Client(base_url=base, headers={"Authorization": party.auth}, timeout=30) as h:
        for n in unavailable:
            again = h.post("/ocpi/cpo/2.3.0/bookings",
                           json=body(n, first + timedelta(hours=n // 4)))  # fmt: skip
            assert again.status_code in (200, 201), again.text[:300]
            assert again.json()["data"]["reservation_status"] == "RESERVED"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT b.request_id, count(DISTINCT b.id), count(DISTINCT r.id), count(DISTINCT t.id)"
            " FROM bookings_booking b"
            " LEFT JOIN bookings_bookingrequest r ON r.booking_id = b.id"
            " LEFT JOIN bookings_bookingtransition t ON t.booking_id = b.id AND t.event = 'CREATED'"
            " GROUP BY b.request_id"
        )
        rows = cursor.fetchall()
    by_request = {request_id: (bookings, requests, created)
                  for request_id, bookings, requests, created in rows}  # fmt: skip
    # Every request has its one booking, with its request row(s) and one creation audit row.
    assert set(by_request) == {f"CUT-{n}" for n in answers}
    assert all(b == 1 and r >= 1 and c == 1 for b, r, c in by_request.values()), json.dumps(
        by_request
    )[:500]
