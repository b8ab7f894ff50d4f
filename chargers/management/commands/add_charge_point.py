"""Provision a charge point with N EVSEs at a location (by its OCPI location id)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from locations.services import ProvisioningError, charge_point_provision, charger_password


class Command(BaseCommand):
    help = (
        "Provision a charge point and its EVSEs; prints `EVSE <uid>` for each EVSE created, "
        "then its OCPP Basic-auth password when one was generated (shown once)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("charge_point_id", help="the OCPP identity (last URL segment)")
        parser.add_argument("--location", required=True, help="OCPI location id")
        parser.add_argument("--evses", type=int, required=True, help="number of EVSEs")
        parser.add_argument("--ocpp", choices=["1.6", "2.0.1"], default="1.6")
        parser.add_argument(
            "--password", default=None, help="OCPP Basic-auth password (default: generated)"
        )

    def handle(self, *args, **options) -> None:
        password = options["password"] or charger_password()
        try:
            charge_point = charge_point_provision(
                identity=options["charge_point_id"],
                location_ocpi_id=options["location"],
                evses=options["evses"],
                ocpp_version=options["ocpp"],
                password=password,
            )
        except (ProvisioningError, IntegrityError) as error:
            raise CommandError(str(error)) from error
        for evse in charge_point.evses.order_by("ocpp_evse_id"):
            self.stdout.write(f"EVSE {evse.uid}")
        if not options["password"]:
            self.stdout.write(f"Password {password}")
            self.stderr.write(
                f"Set this password on the charger (HTTP Basic, user {charge_point.identity}); "
                "it is shown only now."
            )
