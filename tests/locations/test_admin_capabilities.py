"""The admin refuses UNLOCK_CAPABLE on an EVSE whose connectors are all fixed cables (a cable
has no lock an eMSP's UNLOCK_CONNECTOR could release), on the EVSE's page with its connectors
and on its charge point's page."""

import pytest
from django.urls import reverse

from locations.models import EVSE, Capability, ConnectorFormat
from tests.locations.factories import ConnectorFactory, EVSEFactory
from tests.locations.test_admin_rules import _form

pytestmark = pytest.mark.django_db

REFUSAL = "UNLOCK_CAPABLE needs a socket"


@pytest.fixture
def cable_evse():
    evse = EVSEFactory(uid="CABLE-1", capabilities=[Capability.RESERVABLE], connectors=[])
    ConnectorFactory(evse=evse, connector_id="1", dc=True)  # a fixed DC cable
    return evse


def test_unlock_capable_on_a_cable_only_evse_is_refused_and_accepted_with_a_socket(
    admin_client, cable_evse
):
    url = reverse("admin:locations_evse_change", args=[cable_evse.pk])
    data = _form(admin_client, url)
    data["capabilities"] = ["RESERVABLE,UNLOCK_CAPABLE"]
    refused = admin_client.post(url, data)
    assert refused.status_code == 200 and REFUSAL in refused.content.decode()
    assert EVSE.objects.get(pk=cable_evse.pk).capabilities == [Capability.RESERVABLE]

    data["connectors-0-format"] = [ConnectorFormat.SOCKET]  # the same post, with a socket
    saved = admin_client.post(url, data)
    assert saved.status_code == 302
    assert Capability.UNLOCK_CAPABLE in EVSE.objects.get(pk=cable_evse.pk).capabilities


def test_unlock_capable_set_on_the_charge_point_page_is_refused_for_a_cable_only_evse(
    admin_client, cable_evse
):
    url = reverse("admin:locations_chargepoint_change", args=[cable_evse.charge_point.pk])
    data = _form(admin_client, url)
    data["evses-0-capabilities"] = ["UNLOCK_CAPABLE"]
    refused = admin_client.post(url, data)
    assert refused.status_code == 200 and REFUSAL in refused.content.decode()
    assert EVSE.objects.get(pk=cable_evse.pk).capabilities == [Capability.RESERVABLE]
