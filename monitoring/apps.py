from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self) -> None:
        from celery.signals import task_success

        from .services import record_sweep

        # In the worker processes: each finished beat task is recorded (readiness, metrics).
        task_success.connect(record_sweep, weak=False, dispatch_uid="monitoring.record_sweep")
