"""Commands module, Receiver interface (CPO): RESERVE_NOW, CANCEL_RESERVATION, START_SESSION,
STOP_SESSION and UNLOCK_CONNECTOR.

The CommandResponse says whether we took the command; the CommandResult (what the charger
did) is POSTed to the eMSP's response_url later by ocpi.tasks.command_result_task.
"""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema

from ocpi import responses as r
from ocpi import services
from ocpi.base import OcpiApi
from ocpi.schema import AUTH_ERRORS, envelope_of

from .serializers import (
    CancelReservationSerializer,
    CommandResponseOut,
    ReserveNowSerializer,
    StartSessionSerializer,
    StopSessionSerializer,
    UnlockConnectorSerializer,
)

# command -> (its object's serializer, the service that takes it)
COMMANDS = {
    "RESERVE_NOW": (ReserveNowSerializer, services.command_reserve_now),
    "CANCEL_RESERVATION": (CancelReservationSerializer, services.command_cancel_reservation),
    "START_SESSION": (StartSessionSerializer, services.command_start_session),
    "STOP_SESSION": (StopSessionSerializer, services.command_stop_session),
    "UNLOCK_CONNECTOR": (UnlockConnectorSerializer, services.command_unlock_connector),
}


def command_response(result: str, message: str = "") -> dict:
    body = {"result": result, "timeout": services.COMMAND_TIMEOUT_SECONDS}
    if message:
        body["message"] = [{"language": "en", "text": message[:512]}]
    return body


class CommandApi(OcpiApi):
    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="Command",
            serializers=[serializer for serializer, _ in COMMANDS.values()],
            resource_type_field_name=None,
        ),
        responses={200: envelope_of("CommandResponse", CommandResponseOut), **AUTH_ERRORS},
    )
    def post(self, request, command: str):
        known = COMMANDS.get(command)
        if known is None:
            result, message = "NOT_SUPPORTED", f"{command[:40]} is not supported here."
        else:
            serializer_class, service = known
            serializer = serializer_class(data=request.data)
            serializer.is_valid(raise_exception=True)
            result, message = service(
                party=self.party, data=serializer.validated_data, payload=request.data
            )
        return r.ocpi_response(command_response(result, message))
