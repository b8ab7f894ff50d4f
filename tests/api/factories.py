import factory
from factory.django import DjangoModelFactory

from api.models import Client, Scope
from api.services import client_create


class ClientFactory(DjangoModelFactory[Client]):
    """An API client made by the same service as `manage.py api_add_client`; the secret it was
    given is on `client.secret` (it is stored hashed)."""

    class Meta:
        model = Client

    name = factory.Sequence(lambda n: f"client-{n}")
    scopes = factory.LazyFunction(lambda: [Scope.READ, Scope.BOOK])

    @classmethod
    def _create(cls, model_class, *args, name, scopes, locations=(), **kwargs):
        client, secret = client_create(name=name, scopes=scopes, locations=locations)
        client.secret = secret
        return client
