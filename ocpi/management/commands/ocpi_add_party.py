from django.core.management.base import BaseCommand, CommandError

from ocpi.exceptions import OcpiError
from ocpi.models import Party
from ocpi.services import party_add, versions_url


class Command(BaseCommand):
    help = (
        "Register a roaming party and print its credentials token A (last line) and our "
        "versions URL (the line before), to hand over out of band."
    )

    def add_arguments(self, parser):
        parser.add_argument("country_code")
        parser.add_argument("party_id")
        parser.add_argument("--role", default="EMSP", choices=Party.Role.values)
        parser.add_argument("--name", default="")

    def handle(self, *args, country_code, party_id, role, name, **options):
        if len(country_code) != 2 or not country_code.isalpha():
            raise CommandError("COUNTRY_CODE is two letters (ISO 3166 alpha-2), e.g. DE.")
        if not 1 <= len(party_id) <= 3 or not party_id.isalnum():
            raise CommandError("PARTY_ID is up to three letters or digits, e.g. XMS.")
        try:
            party, token_a = party_add(
                country_code=country_code, party_id=party_id, role=role, name=name
            )
        except OcpiError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Party {party} ({party.get_role_display()}) is waiting to register.")
        self.stdout.write("Give them our versions URL and token A:")
        self.stdout.write(versions_url())
        self.stdout.write(token_a)
