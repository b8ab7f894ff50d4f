"""manage.py api_add_client NAME [--scopes read,book] [--locations OCPI_ID,...]"""

from django.core.management.base import BaseCommand, CommandError

from api.models import Scope
from api.services import client_create
from locations.models import Location
from locations.selectors import location_get_ci


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class Command(BaseCommand):
    help = (
        "Create an operator API client (OAuth2 client credentials). Prints its client id, then "
        "its secret alone on the last line: the secret is stored hashed and shown only now."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scopes", default="read,book", help=f"comma-separated: {', '.join(Scope.values)}"
        )
        parser.add_argument(
            "--locations", default="", help="comma-separated OCPI ids; default every location"
        )

    def handle(self, *args, name: str, scopes: str, locations: str, **options):
        found = []
        for ocpi_id in _split(locations):
            try:
                found.append(location_get_ci(ocpi_id=ocpi_id))
            except Location.DoesNotExist as error:
                raise CommandError(f"There is no location {ocpi_id!r}.") from error
        try:
            client, secret = client_create(name=name, scopes=_split(scopes), locations=found)
        except ValueError as error:
            raise CommandError(str(error)) from error
        limits = ", ".join(loc.ocpi_id for loc in found) or "every location"
        self.stderr.write(
            f"API client {name!r}: scopes {' '.join(client.scopes)}; {limits}. Its client id, "
            "then its secret (shown only now):"
        )
        self.stdout.write(client.application.client_id)
        self.stdout.write(secret)
