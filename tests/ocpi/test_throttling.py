"""Rate limits per eMSP party (ocpi.throttling, partners.ratelimit): 429 in the OCPI envelope with
Retry-After, counted per party, set per party in the admin."""

import pytest

from ocpi.models import Party

pytestmark = pytest.mark.django_db

BASE = "/ocpi/cpo/2.3.0/locations"


def test_party_over_its_limit_gets_429_and_another_party_is_unaffected(
    client, emsp, other_emsp, site, settings
):
    settings.OCPI_RATE_LIMIT_PER_MINUTE = 3
    for _ in range(3):
        assert client.get(BASE, HTTP_AUTHORIZATION=emsp.auth).status_code == 200
    refused = client.get(BASE, HTTP_AUTHORIZATION=emsp.auth)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    body = refused.json()
    assert body["status_code"] == 2000 and "Too many requests" in body["status_message"]
    assert body["timestamp"]
    assert refused["OCPI-to-party-id"] == "XMS"  # still an OCPI answer, routing headers too
    assert client.get(BASE, HTTP_AUTHORIZATION=other_emsp.auth).status_code == 200


def test_party_limit_set_in_the_admin_replaces_the_default(
    admin_client, client, emsp, other_emsp, site, settings
):
    settings.OCPI_RATE_LIMIT_PER_MINUTE = 100
    form = admin_client.get(f"/admin/ocpi/party/{emsp.pk}/change/")
    assert b"rate_limit_per_minute" in form.content
    response = admin_client.post(
        f"/admin/ocpi/party/{emsp.pk}/change/",
        {"country_code": "DE", "party_id": "XMS", "role": "EMSP", "name": emsp.name,
         "booking_module_id": "Booking", "booking_module_version": "1.0",
         "rate_limit_per_minute": "2"},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:3000]
    assert Party.objects.get(pk=emsp.pk).rate_limit_per_minute == 2
    statuses = [client.get(BASE, HTTP_AUTHORIZATION=emsp.auth).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    others = [client.get(BASE, HTTP_AUTHORIZATION=other_emsp.auth).status_code for _ in range(3)]
    assert others == [200, 200, 200]


def test_unauthenticated_requests_are_not_counted(client, emsp, site, settings):
    settings.OCPI_RATE_LIMIT_PER_MINUTE = 1
    for _ in range(3):
        assert client.get(BASE).status_code == 401
    assert client.get(BASE, HTTP_AUTHORIZATION=emsp.auth).status_code == 200
