"""The database goes away while eMSPs book: every connection is cut and new ones are refused for
two seconds, as during a PostgreSQL restart or failover, or the server itself is killed. The web
answers 503 with Retry-After meanwhile (never a 500), serves again once the database is back
without being restarted, every booking answered RESERVED is there afterwards, and a request
answered 503 sent again is applied once: no booking is lost, doubled or half-written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from django.db import connection

from config import runner
from config import stack as config_stack
from ocpi.models import Party
from tests.faults.conftest import start_web, wait_until
from tests.faults.database import test_database_url
from tests.locations.factories import BookingPolicyFactory, EVSEFactory, LocationFactory
from tests.ocpi.factories import PartyFactory
from tests.supervision import supervised_pid

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


def bookable_location() -> Party:
    location = LocationFactory(ocpi_id="LOC-CUT")
    BookingPolicyFactory(location=location, slot_step_minutes=15, horizon_days=30)
    for n in range(1, 5):
        EVSEFactory(charge_point__location=location, uid=f"EVSE-C{n}")
    # As many requests as four busy clients send: no rate limit in the way.
    return PartyFactory(country_code="DE", party_id="XMS", rate_limit_per_minute=1_000_000)


def book_through(base: str, party: Party, fault: Callable[[], None]) -> list[int]:
    """Four eMSP clients POST BookingRequests while `fault` runs; each answer must be a booking
    or a 503 (OCPI 3000, Retry-After), the web must serve again afterwards, and every request
    answered 503 is sent again, as the eMSP does, and then booked. Returns the request numbers."""
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
                    continue
                if answers[n].status_code == 503:
                    stop.wait(0.5)  # Retry-After, shortened for the test

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(answers) >= 20, 30, "bookings before the fault")
        fault()
        during = len(answers)
        wait_until(lambda: len(answers) >= during + 20, 60, "bookings after the database came back")
    finally:
        stop.set()
        for t in threads:
            t.join(60)

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
    return list(answers)


BOOKINGS_BY_REQUEST = (
    "SELECT b.request_id, count(DISTINCT b.id), count(DISTINCT r.id), count(DISTINCT t.id)"
    " FROM bookings_booking b"
    " LEFT JOIN bookings_bookingrequest r ON r.booking_id = b.id"
    " LEFT JOIN bookings_bookingtransition t ON t.booking_id = b.id AND t.event = 'CREATED'"
    " GROUP BY b.request_id"
)


def assert_each_booked_once(requests: list[int], rows: list[tuple]) -> None:
    """Every request has its one booking, with its request row(s) and one creation audit row."""
    by_request = {request_id: (bookings, requests, created)
                  for request_id, bookings, requests, created in rows}  # fmt: skip
    assert set(by_request) == {f"CUT-{n}" for n in requests}
    assert all(b == 1 and r >= 1 and c == 1 for b, r, c in by_request.values()), json.dumps(
        by_request
    )[:500]


def test_the_database_going_away_during_posts_loses_nothing_and_the_web_recovers(
    processes, redis_server
):
    party = bookable_location()
    base = start_web(processes, redis_server.url)
    outage = Outage()

    def cut_for_two_seconds() -> None:
        outage.begin()
        time.sleep(2)  # the database is away
        outage.end()

    try:
        requests = book_through(base, party, cut_for_two_seconds)
    finally:
        outage.close()
    with connection.cursor() as cursor:
        cursor.execute(BOOKINGS_BY_REQUEST)
        assert_each_booked_once(requests, cursor.fetchall())


def test_postgresql_killed_during_posts_is_restarted_and_loses_nothing(
    processes, redis_server, tmp_path
):
    # The real crash: PostgreSQL (the embedded server, under supervisord as `make run` runs it)
    # is killed outright twice while eMSPs book. supervisord starts it again, it recovers from
    # its write-ahead log, and the web serves again without a restart.
    party = bookable_location()
    url, server = config_stack.prepare_postgres(tmp_path / "pg")
    conf = tmp_path / "supervisord.conf"
    conf.write_text(runner.supervisord_conf({}, tmp_path, sys.executable, servers=[server]))
    supervisord = processes.start(
        "supervisord", [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
        processes.env(redis_server.url),
    )  # fmt: skip
    config_stack.wait_for_servers(supervisord, database_url=url)
    # The test database, schema and rows, copied into the crashing server.
    bin_dir = Path(server.argv[0]).parent
    dump = subprocess.run([bin_dir / "pg_dump", "--no-owner", "--no-privileges", "--dbname",
                           test_database_url()], capture_output=True)  # fmt: skip
    assert dump.returncode == 0, dump.stderr.decode()
    # Per-column options (`ALTER COLUMN ... SET (...)`) are left out: our schema sets none, and
    # a server may add options of its own that another server does not know.
    script = re.sub(rb"(?m)^ALTER TABLE ONLY \S+ ALTER COLUMN \S+ SET \(.*\);$", b"", dump.stdout)
    load = subprocess.run([bin_dir / "psql", "--quiet", "--set", "ON_ERROR_STOP=1", "--dbname",
                           url], input=script, capture_output=True)  # fmt: skip
    assert load.returncode == 0, load.stderr.decode()
    base = start_web(processes, redis_server.url, DATABASE_URL=url)

    def postmaster() -> int:
        return supervised_pid(conf, "postgres")

    def kill_twice() -> None:
        for _ in range(2):
            killed = postmaster()
            os.kill(killed, signal.SIGKILL)
            wait_until(lambda killed=killed: postmaster() not in (0, killed), 30,
                       "PostgreSQL started again")  # fmt: skip
            config_stack.wait_for_servers(supervisord, database_url=url)
            time.sleep(0.5)

    requests = book_through(base, party, kill_twice)
    with psycopg.connect(url) as conn:
        assert_each_booked_once(requests, conn.execute(BOOKINGS_BY_REQUEST).fetchall())
    log = (tmp_path / "postgres.log").read_text()
    assert log.count("database system was not properly shut down") == 2
