from django.core.management.base import BaseCommand, CommandError

from ocpi.exceptions import OcpiError
from ocpi.services import register_with


class Command(BaseCommand):
    help = "Register with a party from our side: their versions URL and the token A they gave us."

    def add_arguments(self, parser):
        parser.add_argument("versions_url")
        parser.add_argument("token_a")

    def handle(self, *args, versions_url, token_a, **options):
        try:
            party = register_with(versions_url=versions_url, token_a=token_a)
        except OcpiError as error:
            raise CommandError(f"OCPI {error.status_code}: {error.message}") from error
        self.stdout.write(f"Registered with {party} on OCPI {party.version}.")
        for endpoint in party.endpoints:
            self.stdout.write(
                f"  {endpoint['identifier']:<12} {endpoint['role']:<8} {endpoint['url']}"
            )
