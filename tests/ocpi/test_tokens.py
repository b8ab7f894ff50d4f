"""Tokens module, Receiver interface: eMSPs PUT/PATCH their tokens and GET them back."""

import json

import pytest

from ocpi.models import Token
from tests.ocpi.factories import TokenFactory

pytestmark = pytest.mark.django_db

BASE = "/ocpi/cpo/2.3.0/tokens"


def token_body(**extra):
    body = {"country_code": "DE", "party_id": "XMS", "uid": "012345678", "type": "RFID",
            "contract_id": "DE-XMS-C12345678-9", "visual_number": "DF000-2001-8999",
            "issuer": "Fake eMSP", "group_id": "DF000-2001", "valid": True,
            "whitelist": "ALLOWED", "language": "de",
            "last_updated": "2026-01-01T10:00:00Z"}  # fmt: skip
    body.update(extra)
    return body


def put(client, party, body, path="DE/XMS/012345678"):
    return client.put(f"{BASE}/{path}", data=json.dumps(body), content_type="application/json",
                      HTTP_AUTHORIZATION=party.auth)  # fmt: skip


def test_token_put_creates_then_replaces(client, emsp):
    created = put(client, emsp, token_body())
    assert created.status_code == 201 and created.json()["status_code"] == 1000
    replaced = put(client, emsp, token_body(valid=False))
    assert replaced.status_code == 200
    token = Token.objects.get()
    assert token.valid is False and token.owner == emsp and token.issuer == "Fake eMSP"


def test_token_get_returns_the_stored_token(client, emsp):
    put(client, emsp, token_body())
    response = client.get(f"{BASE}/DE/XMS/012345678", {"type": "RFID"},
                          HTTP_AUTHORIZATION=emsp.auth)  # fmt: skip
    data = response.json()["data"]
    assert data["uid"] == "012345678" and data["whitelist"] == "ALLOWED"
    assert data["last_updated"] == "2026-01-01T10:00:00Z"


def test_token_patch_updates_fields_and_needs_last_updated(client, emsp):
    put(client, emsp, token_body())
    url = f"{BASE}/DE/XMS/012345678"
    missing = client.patch(url, data=json.dumps({"valid": False}), content_type="application/json",
                           HTTP_AUTHORIZATION=emsp.auth)  # fmt: skip
    assert (
        missing.json()["status_code"] == 2001 and "last_updated" in missing.json()["status_message"]
    )
    patch = {"valid": False, "last_updated": "2026-01-02T00:00:00Z"}
    ok = client.patch(url, data=json.dumps(patch), content_type="application/json",
                      HTTP_AUTHORIZATION=emsp.auth)  # fmt: skip
    assert ok.json()["status_code"] == 1000
    assert Token.objects.get().valid is False


def test_token_unknown_is_404_with_2004(client, emsp):
    response = client.get(f"{BASE}/DE/XMS/NOPE", HTTP_AUTHORIZATION=emsp.auth)
    assert response.status_code == 404 and response.json()["status_code"] == 2004


def test_token_of_another_party_is_invisible_and_unwritable(client, emsp, other_emsp):
    TokenFactory(owner=other_emsp, uid="THEIRS")
    assert client.get(f"{BASE}/FR/OTH/THEIRS", HTTP_AUTHORIZATION=emsp.auth).status_code == 404
    body = token_body(country_code="FR", party_id="OTH", uid="THEIRS", valid=False)
    response = put(client, emsp, body, path="FR/OTH/THEIRS")
    assert response.status_code == 404
    assert Token.objects.get(uid="THEIRS").valid is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (token_body(uid="OTHER"), "uid"),
        (token_body(valid="yes"), "valid"),
        (token_body(whitelist="SOMETIMES"), "whitelist"),
        (token_body(contract_id="C" * 37), "contract_id"),
        (token_body(last_updated="2026-13-01T00:00:00Z"), "last_updated"),
    ],
    ids=["uid-mismatch", "wrong-type", "unknown-enum", "overlong", "bad-datetime"],
)
def test_token_put_invalid_is_2001_naming_the_field(client, emsp, body, field):
    response = put(client, emsp, body)
    assert response.json()["status_code"] == 2001
    assert field in response.json()["status_message"]
    assert not Token.objects.exists()
