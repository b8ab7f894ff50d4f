"""Give a charge point a new OCPP Basic-auth password (generated unless given), shown once."""

from django.core.management.base import BaseCommand, CommandError

from locations.models import ChargePoint
from locations.services import charge_point_set_password


class Command(BaseCommand):
    help = "Set a charge point's OCPP Basic-auth password; prints a generated one once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("charge_point_id", help="the OCPP identity (last URL segment)")
        parser.add_argument("--password", default=None, help="default: generated")

    def handle(self, *args, **options) -> None:
        charge_point = ChargePoint.objects.filter(identity=options["charge_point_id"]).first()
        if charge_point is None:
            raise CommandError(f"There is no charge point {options['charge_point_id']!r}.")
        password = charge_point_set_password(
            charge_point=charge_point, password=options["password"]
        )
        if not options["password"]:
            self.stdout.write(f"Password {password}")
        self.stderr.write(
            f"Set the new password on the charger (HTTP Basic, user {charge_point.identity}): "
            "its next connection must use it."
        )
