from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """Project-wide wiring that belongs to no domain app (database connection tuning)."""

    name = "config"
    label = "project"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from .db import use_c_timestamptz_loader

        connection_created.connect(use_c_timestamptz_loader, dispatch_uid="c_timestamptz")
