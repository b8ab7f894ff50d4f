import base64
import secrets
from datetime import UTC, datetime

import factory
from factory.django import DjangoModelFactory

from ocpi.models import Party, Token, token_digest


def auth(token: str) -> str:
    return "Token " + base64.b64encode(token.encode()).decode()


class PartyFactory(DjangoModelFactory[Party]):
    """A registered eMSP. `party.plain_token` is the token C it calls us with and `party.auth`
    the Authorization header carrying it; pass `token=` to choose it."""

    class Meta:
        model = Party

    country_code = "DE"
    party_id = factory.Sequence(lambda n: f"E{n % 100:02d}")
    role = Party.Role.EMSP
    name = factory.Sequence(lambda n: f"eMSP {n}")
    state = Party.State.REGISTERED
    token_b = factory.Sequence(lambda n: f"token-b-{n:06d}")
    version = "2.3.0"
    endpoints = factory.LazyFunction(list)

    @classmethod
    def _create(cls, model_class, *args, token=None, **kwargs):
        token = token or secrets.token_urlsafe(16)
        kwargs["token_c_digest"] = token_digest(token)
        obj = super()._create(model_class, *args, **kwargs)
        obj.plain_token = token
        obj.auth = auth(token)
        return obj


class TokenFactory(DjangoModelFactory[Token]):
    class Meta:
        model = Token

    owner = factory.SubFactory(PartyFactory)
    country_code = factory.LazyAttribute(lambda o: o.owner.country_code)
    party_id = factory.LazyAttribute(lambda o: o.owner.party_id)
    uid = factory.Sequence(lambda n: f"04AB{n:08X}")
    type = "RFID"
    contract_id = factory.Sequence(lambda n: f"DE-XMS-C{n:08d}")
    issuer = "Test eMSP"
    valid = True
    whitelist = "ALLOWED"
    last_updated = datetime(2026, 1, 1, tzinfo=UTC)
