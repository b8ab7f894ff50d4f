"""Liveness, readiness and metrics in the web process, on the test database and Redis; the
checks that need the workers, beat and the csms running are in tests/faults/test_health.py."""

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import Booking, Status
from locations.models import ChargePoint
from monitoring.models import SweepRun
from monitoring.services import sweep_run_record
from ocpi.models import Push
from tests.bookings.factories import BookingFactory
from tests.locations.factories import ChargePointFactory
from tests.ocpi.factories import PartyFactory

EMSP = {"emsp_country_code": "DE", "emsp_party_id": "XMS"}


def ocpi_booking(**kwargs) -> Booking:
    return BookingFactory(
        channel=Booking.Channel.OCPI, request_id=uuid.uuid4().hex[:36], **EMSP, **kwargs
    )


# The readiness checks run on threads of their own, which see only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _own_bus(settings):
    """A command-bus prefix nobody else uses: no csms of another test reports under it."""
    settings.CSMS_BUS_PREFIX = f"test-health:{uuid.uuid4().hex[:8]}"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text, or None if absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', label_text))
        if found == labels:
            return float(value)
    return None


def test_liveness_answers_without_asking_anything(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readiness_of_the_web_scope_checks_postgresql_and_redis(client):
    response = client.get("/health/ready?scope=web")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["scope"] == "web"
    assert set(body["checks"]) == {"postgresql", "redis"}
    assert all(check["status"] == "ok" for check in body["checks"].values())


def test_readiness_is_503_when_beat_sweeps_are_stale(client):
    sweep_run_record(
        task="bookings.tasks.sweep_reservations_task", at=timezone.now() - timedelta(minutes=10)
    )
    response = client.get("/health/ready")
    assert response.status_code == 503
    beat = response.json()["checks"]["beat"]
    assert beat["status"] == "unavailable"
    assert "the last sweep finished" in beat["error"]
    assert beat["last_sweep_age_seconds"] >= 600
    assert response.json()["status"] == "unavailable"


def test_readiness_beat_is_ok_after_a_recent_sweep_and_csms_absent_is_503(client):
    sweep_run_record(task="ocpi.tasks.push_sweep_task", at=timezone.now())
    sweep_run_record(
        task="bookings.tasks.sweep_reservations_task", at=timezone.now() - timedelta(hours=1)
    )
    response = client.get("/health/ready")
    checks = response.json()["checks"]
    assert checks["beat"]["status"] == "ok"
    assert checks["postgresql"]["status"] == "ok" and checks["redis"]["status"] == "ok"
    # No csms process under this test's bus prefix.
    assert checks["csms"] == {
        "status": "unavailable", "error": "no csms process reports on the command bus",
        "seconds": checks["csms"]["seconds"], "processes": 0, "connected_chargers": 0,
    }  # fmt: skip
    assert response.status_code == 503


def test_readiness_refuses_an_unknown_scope(client):
    assert client.get("/health/ready?scope=everything").status_code == 400


def test_sweep_record_is_recorded_for_beat_tasks_only():
    from monitoring.services import record_sweep

    class Sent:
        name = "bookings.tasks.sweep_no_shows_task"

    class Other:
        name = "bookings.tasks.reserve_now_task"

    record_sweep(sender=Sent())
    record_sweep(sender=Other())
    record_sweep(sender=Sent())
    assert list(SweepRun.objects.values_list("task", flat=True)) == [Sent.name]


def test_metrics_need_the_token_or_network_when_set(client, settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 404  # off unless configured
    settings.METRICS_TOKEN = "scrape-secret"
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/plain")
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    # The test client comes from 127.0.0.1: the right token from the wrong network is refused.
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 403
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200  # the network alone


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"

    def scrape() -> str:
        response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
        assert response.status_code == 200
        return response.content.decode()

    return scrape


def test_metrics_count_bookings_by_status_and_channel(scrape):
    BookingFactory(channel=Booking.Channel.STAFF)
    BookingFactory(channel=Booking.Channel.STAFF)
    ocpi_booking(status=Status.PENDING)
    text = scrape()
    assert sample(text, "chargebook_bookings", status="RESERVED", channel="STAFF") == 2
    assert sample(text, "chargebook_bookings", status="PENDING", channel="OCPI") == 1
    assert sample(text, "chargebook_bookings", status="PENDING", channel="STAFF") is None
    BookingFactory(channel=Booking.Channel.API, status=Status.PENDING)
    assert sample(scrape(), "chargebook_bookings", status="PENDING", channel="API") == 1


def test_metrics_show_push_backlog_per_party_sweep_age_and_chargers(scrape):
    waiting = PartyFactory(country_code="DE", party_id="XMS")
    PartyFactory(country_code="FR", party_id="OTH")
    booking = ocpi_booking()
    Push.objects.all().delete()  # only the two below wait
    Push.objects.create(party=waiting, kind=Push.Kind.BOOKING, booking=booking)
    Push.objects.create(party=waiting, kind=Push.Kind.BOOKING, booking=booking)
    Push.objects.filter(party=waiting).update(created_at=timezone.now() - timedelta(minutes=5))
    sweep_run_record(
        task="bookings.tasks.sweep_reservations_task", at=timezone.now() - timedelta(minutes=2)
    )
    ChargePoint.objects.update(is_connected=False)
    ChargePointFactory(is_connected=True)
    ChargePointFactory(is_connected=False)
    text = scrape()
    assert sample(text, "chargebook_ocpi_push_queue_depth", party="DE*XMS") == 2
    assert sample(text, "chargebook_ocpi_push_queue_depth", party="FR*OTH") == 0
    assert sample(text, "chargebook_ocpi_push_lag_seconds", party="DE*XMS") >= 300
    assert sample(text, "chargebook_ocpi_push_lag_seconds", party="FR*OTH") == 0
    age = sample(
        text, "chargebook_sweep_age_seconds", task="bookings.tasks.sweep_reservations_task"
    )
    assert age >= 120
    assert sample(text, "chargebook_charge_points_connected") == 1
    assert sample(text, "chargebook_charge_points") == ChargePoint.objects.count()


def test_metrics_count_requests_by_view_and_status(client, scrape):
    def count(status: str) -> float:
        labels = {"method": "GET", "status": status, "view": "health-ready"}
        return sample(scrape(), "django_http_responses_total_by_status_view_method_total",
                      **labels) or 0  # fmt: skip

    before_ok, before_bad = count("200"), count("400")
    client.get("/health/ready?scope=web")
    client.get("/health/ready?scope=web")
    client.get("/health/ready?scope=nonsense")
    assert count("200") == before_ok + 2
    assert count("400") == before_bad + 1
