"""API clients made in the admin: an OAuth2 application, then its scopes and location limits."""

import pytest
from oauth2_provider.models import Application

from api.models import Client
from tests.api.conftest import token_for

pytestmark = pytest.mark.django_db


def test_admin_creates_a_client_that_gets_a_token(admin_client, site):
    secret = "s3cret-" * 6
    app = Application.objects.create(
        name="Depot scheduler", client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS, client_secret=secret,
    )  # fmt: skip
    response = admin_client.post(
        "/admin/api/client/add/",
        {"application": app.pk, "scopes": "read,book", "locations": [site.location.pk]},
    )
    assert response.status_code == 302, response.content[:2000]
    client = Client.objects.get(application=app)
    assert client.scopes == ["read", "book"]
    client.secret = secret
    assert token_for(client)
    other = Application.objects.create(
        name="Other", client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )  # fmt: skip
    bad = admin_client.post("/admin/api/client/add/", {"application": other.pk, "scopes": "root"})
    assert bad.status_code == 200 and not Client.objects.filter(application=other).exists()
