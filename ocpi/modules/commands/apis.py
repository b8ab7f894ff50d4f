"""Commands module, Receiver interface (CPO): RESERVE_NOW and CANCEL_RESERVATION.

The CommandResponse says whether we took the command; the CommandResult (what the charger
did) is POSTed to the eMSP's response_url later by ocpi.tasks.command_result_task.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema

from ocpi import responses as r
from ocpi import services
from ocpi.base import OcpiApi
from ocpi.schema import AUTH_ERRORS, envelope_of

from .serializers import CancelReservationSerializer, CommandResponseOut, ReserveNowSerializer


def command_response(result: str, message: str = "") -> dict:
    body = {"result": result, "timeout": services.COMMAND_TIMEOUT_SECONDS}
    if message:
        body["message"] = [{"language": "en", "text": message[:512]}]
    return body


class CommandApi(OcpiApi):
    @extend_schema(
        request=ReserveNowSerializer,
        responses={200: envelope_of("CommandResponse", CommandResponseOut), **AUTH_ERRORS},
    )
    def post(self, request, command: str):
        if command == "RESERVE_NOW":
            serializer = ReserveNowSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            result, message = services.command_reserve_now(
                party=self.party, data=serializer.validated_data, payload=request.data
            )
        elif command == "CANCEL_RESERVATION":
            serializer = CancelReservationSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            result, message = services.command_cancel_reservation(
                party=self.party, data=serializer.validated_data, payload=request.data
            )
        else:
            result, message = "NOT_SUPPORTED", f"{command[:40]} is not supported here."
        return r.ocpi_response(command_response(result, message))
