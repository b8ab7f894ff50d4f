from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (acts on what chargers report: chargers.signals)
