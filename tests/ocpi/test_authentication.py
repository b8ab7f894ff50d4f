"""The credentials-token lookup every OCPI request runs (constant SQL): the same party, with
every field as the ORM loads it, and never an unregistered one."""

import pytest

from ocpi.authentication import TOKEN_A, TOKEN_C, party_for_header
from ocpi.models import Party, token_digest
from tests.ocpi.factories import PartyFactory

pytestmark = pytest.mark.django_db


def test_party_for_header_loads_every_field_as_the_orm_does():
    endpoints = [{"identifier": "bookings", "role": "RECEIVER", "url": "https://e.example/b"}]
    party = PartyFactory(endpoints=endpoints, roles=[{"role": "EMSP"}])
    found, which = party_for_header(party.auth)
    expected = Party.objects.get(pk=party.pk)
    assert which == TOKEN_C
    for field in Party._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert found.endpoints == endpoints and found.roles == [{"role": "EMSP"}]


def test_party_for_header_token_a_and_unregistered():
    party = PartyFactory(token_a_digest=token_digest("token-a"))
    assert party_for_header(party.auth.replace(party.auth.split()[1], "dG9rZW4tYQ==")) == (
        party,
        TOKEN_A,
    )
    Party.objects.filter(pk=party.pk).update(state=Party.State.UNREGISTERED)
    assert party_for_header(party.auth) is None
