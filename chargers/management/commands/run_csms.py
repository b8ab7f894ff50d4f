"""Serve ws://HOST:PORT/ocpp/<charge point id> (OCPP 1.6-J and 2.0.1) until interrupted."""

from django.conf import settings
from django.core.management.base import BaseCommand

from chargers.csms import run


class Command(BaseCommand):
    help = "Run the OCPP central system (csms): ws://HOST:PORT/ocpp/<charge point id>."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=None, help="default: settings.CSMS_HOST")
        parser.add_argument("--port", type=int, default=None, help="default: settings.CSMS_PORT")
        parser.add_argument("--node", default=None, help="bus node id (default: random)")

    def handle(self, *args, host=None, port=None, node=None, **options) -> None:
        host = host or settings.CSMS_HOST
        port = settings.CSMS_PORT if port is None else port
        self.stdout.write(f"csms: serving ws://{host}:{port}/ocpp/<charge point id>")
        run(host=host, port=port, node=node)
