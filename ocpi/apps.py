from django.apps import AppConfig


class OcpiConfig(AppConfig):
    name = "ocpi"
    verbose_name = "OCPI"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the after-commit push nudge)
