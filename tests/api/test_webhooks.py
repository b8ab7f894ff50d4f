"""Webhook deliveries to a real local HTTP server: signed, in order per booking, retried after
a failure with later events waiting, re-sendable; subscriptions over the API."""

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Response

from api import webhooks
from api.models import WebhookDelivery, WebhookSubscription
from api.tasks import webhook_sweep_task
from tests.api.conftest import api_for
from tests.api.factories import ClientFactory

pytestmark = pytest.mark.django_db
PORT = 7351  # this project's tests listen on 7300-7399 only


class Receiver:
    """Records what arrives; answers with the next queued status (200 once they run out)."""

    def __init__(self, server: HTTPServer):
        self.server = server
        self.received = []
        self.statuses = []
        server.expect_request("/hook", method="POST").respond_with_handler(self.handle)

    def handle(self, request):
        self.received.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return Response("", status)


@pytest.fixture
def receiver():
    server = HTTPServer(host="127.0.0.1", port=PORT)
    server.start()
    try:
        yield Receiver(server)
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def booker(site):
    return api_for(ClientFactory(scopes=["read", "book", "drivers", "webhooks"]))


def _subscribe(http, url, events=()):
    response = http.post("/api/v1/webhooks", {"url": url, "events": list(events)}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["data"]


def _book(http, driver, start, **extra):
    body = {"type": "create", "driverId": driver.pk, "locationId": "SITE-1",
            "startAt": start.isoformat(), "endAt": (start + timedelta(hours=1)).isoformat(),
            **extra}  # fmt: skip
    data = http.post("/api/v1/booking-requests", body, format="json").json()["data"]
    assert data["status"] == "approved", data
    return data["bookingId"]


def _deliver_all(now=None):
    for subscription_id in webhooks.sweep(now=now):
        webhooks.deliver(subscription_id=subscription_id, now=now)


def test_deliveries_are_signed_and_in_order(booker, receiver, driver, tomorrow_10):
    http = booker
    hook = _subscribe(http, f"http://127.0.0.1:{PORT}/hook")
    booking_id = _book(http, driver, tomorrow_10)
    http.post("/api/v1/booking-requests", {"type": "cancel", "bookingId": booking_id},
              format="json")  # fmt: skip
    _deliver_all()
    assert [r.headers["X-Chargebook-Event"] for r in receiver.received] == [
        "booking.created", "booking.canceled"
    ]  # fmt: skip
    for request in receiver.received:
        timestamp = request.headers["X-Chargebook-Timestamp"]
        expected = hmac.new(hook["secret"].encode(), f"{timestamp}.".encode() + request.data,
                            hashlib.sha256).hexdigest()  # fmt: skip
        assert request.headers["X-Chargebook-Signature"] == f"v1={expected}"
        assert abs(int(timestamp) - timezone.now().timestamp()) < 60
    last = json.loads(receiver.received[-1].data)
    assert last["event"] == "booking.canceled"
    assert last["booking"]["id"] == booking_id and last["booking"]["status"] == "canceled"
    # A second sweep finds nothing new.
    _deliver_all()
    assert len(receiver.received) == 2


def test_failed_delivery_is_retried_and_later_events_wait(booker, receiver, driver, tomorrow_10):
    http = booker
    _subscribe(http, f"http://127.0.0.1:{PORT}/hook")
    receiver.statuses = [500]
    first = _book(http, driver, tomorrow_10)
    http.post("/api/v1/booking-requests", {"type": "cancel", "bookingId": first}, format="json")
    _deliver_all()
    assert len(receiver.received) == 1  # the 500; the cancel waits behind it
    failed = WebhookDelivery.objects.get(event="booking.created")
    assert failed.state == WebhookDelivery.State.PENDING and failed.attempts == 1
    assert failed.last_status == "500"
    _deliver_all(now=timezone.now() + timedelta(seconds=1))  # not due yet: backoff is 5 s
    assert len(receiver.received) == 1
    later = timezone.now() + timedelta(seconds=6)
    _deliver_all(now=later)
    events = [r.headers["X-Chargebook-Event"] for r in receiver.received]
    assert events == ["booking.created", "booking.created", "booking.canceled"]
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"SENT"}


def test_admin_sends_again(booker, receiver, driver, tomorrow_10, admin_client):
    http = booker
    _subscribe(http, f"http://127.0.0.1:{PORT}/hook", events=["booking.created"])
    _book(http, driver, tomorrow_10)
    webhook_sweep_task()  # the beat task: sweep, then a deliverer per subscription
    _deliver_all()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == WebhookDelivery.State.SENT
    response = admin_client.post(
        "/admin/api/webhookdelivery/",
        {"action": "send_again", "_selected_action": [delivery.pk]},
    )
    assert response.status_code == 302
    _deliver_all()
    assert [r.headers["X-Chargebook-Delivery"] for r in receiver.received] == [
        str(delivery.pk), str(delivery.pk)
    ]  # fmt: skip


def test_subscriptions_need_the_scope_and_stay_with_their_client(booker, site):
    http = booker
    hook = _subscribe(http, "https://fleet.example/hook", events=["booking.canceled"])
    assert "secret" not in http.get(f"/api/v1/webhooks/{hook['id']}").json()["data"]
    other = api_for(ClientFactory(scopes=["read", "webhooks"]))
    assert other.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404
    assert other.get("/api/v1/webhooks").json()["data"] == []
    reader = api_for(ClientFactory(scopes=["read"]))
    assert reader.get("/api/v1/webhooks").status_code == 403
    bad = http.post("/api/v1/webhooks", {"url": "x", "events": ["nope"]}, format="json")
    assert bad.status_code == 422 and set(bad.json()["errors"]) == {"url", "events[0]"}
    assert http.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert http.get("/api/v1/webhooks").json()["data"] == []


def test_a_crashed_deliverer_loses_nothing(booker, receiver, driver, tomorrow_10):
    http = booker
    hook = _subscribe(http, f"http://127.0.0.1:{PORT}/hook")
    _book(http, driver, tomorrow_10)
    webhooks.sweep()
    # A worker took the queue and died mid-delivery: its lease is still running.
    now = timezone.now()
    WebhookSubscription.objects.filter(pk=hook["id"]).update(lease_until=now + timedelta(minutes=1))
    assert webhooks.deliver(subscription_id=hook["id"], now=now).sent == 0
    # Once the lease ran out, the next deliverer (the beat sweep starts one) sends it.
    assert webhooks.sweep(now=now + timedelta(minutes=3)) == {hook["id"]}
    assert webhooks.deliver(subscription_id=hook["id"], now=now + timedelta(minutes=3)).sent == 1
    assert [r.headers["X-Chargebook-Event"] for r in receiver.received] == ["booking.created"]


def test_events_caused_by_others_reach_the_owner(booker, receiver, driver, tomorrow_10):
    from bookings.models import Booking, ChargerReservation
    from bookings.services import Actor, booking_record_charger_state

    http = booker
    _subscribe(http, f"http://127.0.0.1:{PORT}/hook", events=["booking.held"])
    booking_id = _book(http, driver, tomorrow_10)
    booking_record_charger_state(
        booking=Booking.objects.get(uid=booking_id), state=ChargerReservation.HELD,
        actor=Actor.charger("DEPOT-CP1"),
    )  # fmt: skip
    _deliver_all()
    assert [r.headers["X-Chargebook-Event"] for r in receiver.received] == ["booking.held"]
    assert json.loads(receiver.received[0].data)["booking"]["holdState"] == "held"


def test_a_receiver_on_a_private_address_is_not_called_unless_allowed(
    booker, receiver, driver, tomorrow_10, settings
):
    settings.OUTBOUND_ALLOW_PRIVATE_URLS = False
    _subscribe(booker, f"http://127.0.0.1:{PORT}/hook")
    _book(booker, driver, tomorrow_10)
    _deliver_all()
    assert receiver.received == []  # loopback: refused before any connection
    held = WebhookDelivery.objects.get(event="booking.created")
    assert held.state == WebhookDelivery.State.PENDING and "non-public address" in held.last_error


def test_a_trickling_receiver_is_cut_at_the_deadline(booker, driver, tomorrow_10, settings):
    from tests.ocpi.partner import Partner

    settings.OUTBOUND_HTTP_DEADLINE_SECONDS = 1
    with Partner(trickle_seconds=0.5) as partner:
        _subscribe(booker, f"{partner.url}/hook")
        _book(booker, driver, tomorrow_10)
        started = time.monotonic()
        _deliver_all()
        assert time.monotonic() - started < 5  # not the minutes a trickle would take
    delivery = WebhookDelivery.objects.get(event="booking.created")
    assert delivery.state == WebhookDelivery.State.PENDING and "within 1.0 s" in delivery.last_error


def test_a_deliverer_that_lost_its_lease_stops_before_the_next_send(
    booker, receiver, driver, tomorrow_10, monkeypatch
):
    hook = _subscribe(booker, f"http://127.0.0.1:{PORT}/hook")
    first = _book(booker, driver, tomorrow_10)
    booker.post("/api/v1/booking-requests", {"type": "cancel", "bookingId": first}, format="json")
    webhooks.sweep()
    post = webhooks._post

    def post_then_lose_the_lease(sub, delivery, now):
        status = post(sub, delivery, now)
        # Meanwhile another deliverer took over (this one's lease had run out).
        WebhookSubscription.objects.filter(pk=sub.pk).update(
            lease_until=timezone.now() + timedelta(minutes=5)
        )
        return status

    monkeypatch.setattr(webhooks, "_post", post_then_lose_the_lease)
    assert webhooks.deliver(subscription_id=hook["id"]).sent == 1
    assert [r.headers["X-Chargebook-Event"] for r in receiver.received] == ["booking.created"]
    # The other deliverer's lease is left alone.
    assert WebhookSubscription.objects.get(pk=hook["id"]).lease_until > timezone.now()


def test_a_webhook_deliverer_that_reaches_its_limit_says_to_go_on(
    booker, receiver, driver, tomorrow_10
):
    """As the OCPI deliverer: more deliveries than `limit` mean a fresh task at once."""
    hook = _subscribe(booker, f"http://127.0.0.1:{PORT}/hook")
    booking_id = _book(booker, driver, tomorrow_10)
    booker.post("/api/v1/booking-requests", {"type": "cancel", "bookingId": booking_id},
                format="json")  # fmt: skip
    webhooks.sweep()
    first = webhooks.deliver(subscription_id=hook["id"], limit=1)
    assert first.sent == 1 and first.retry_at is not None
    last = webhooks.deliver(subscription_id=hook["id"], limit=1)
    assert last.sent == 1 and last.retry_at is None


def test_a_webhook_deliverer_past_its_budget_hands_the_rest_to_a_fresh_one(
    booker, driver, tomorrow_10, monkeypatch
):
    """As the OCPI deliverer: after its time budget a deliverer starts no more POSTs and asks
    for a fresh task at once, which goes on in order (before, one task sent a whole backlog)."""
    from partners import outbox
    from tests.ocpi.partner import Partner

    monkeypatch.setattr(outbox, "BUDGET", timedelta(seconds=1))
    with Partner(answer_seconds=0.6) as partner:
        hook = _subscribe(booker, f"{partner.url}/hook")
        for hours in (0, 3):
            booking_id = _book(booker, driver, tomorrow_10 + timedelta(hours=hours))
            booker.post("/api/v1/booking-requests", {"type": "cancel", "bookingId": booking_id},
                        format="json")  # fmt: skip
        webhooks.sweep()
        first = webhooks.deliver(subscription_id=hook["id"])
        assert first.sent < 4 and len(partner.received) == first.sent  # 0.6 s each: two at most
        assert first.retry_at is not None and first.retry_at <= timezone.now()
        for _ in range(4):
            if webhooks.deliver(subscription_id=hook["id"]).retry_at is None:
                break
    delivered = [body["id"] for _, _, body in partner.received]
    assert delivered == sorted(WebhookDelivery.objects.values_list("pk", flat=True))
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"SENT"}
