from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Operator API"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the after-commit webhook sweep)
