"""The web's Prometheus metrics: the requests every web process counted (django-prometheus's
middleware; with PROMETHEUS_MULTIPROC_DIR set, as config.web does, summed over the processes by
prometheus_client's multiprocess mode), and gauges read from PostgreSQL at scrape time, which
are the same whichever process answers. The csms processes serve their own
(chargers.metrics)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bookings.selectors import booking_counts
from locations.selectors import charge_points_connected
from ocpi.selectors import push_backlogs

from .models import SweepRun


class DatabaseCollector(Collector):
    """Gauges computed from the database on every scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = timezone.now()
        bookings = GaugeMetricFamily(
            "chargebook_bookings", "Bookings by status and channel.", labels=["status", "channel"]
        )
        for (status, channel), count in sorted(booking_counts().items()):
            bookings.add_metric([status, channel], count)
        yield bookings

        sweeps = GaugeMetricFamily(
            "chargebook_sweep_age_seconds",
            "Seconds since each beat task last finished without an error.",
            labels=["task"],
        )
        for run in SweepRun.objects.all():
            sweeps.add_metric([run.task], (now - run.finished_at).total_seconds())
        yield sweeps

        depth = GaugeMetricFamily(
            "chargebook_ocpi_push_queue_depth",
            "Pushes waiting to go to each eMSP.",
            labels=["party"],
        )
        lag = GaugeMetricFamily(
            "chargebook_ocpi_push_lag_seconds",
            "Seconds the oldest waiting push to each eMSP has waited (0: none waits).",
            labels=["party"],
        )
        for backlog in push_backlogs():
            depth.add_metric([backlog.party], backlog.pending)
            waited = (now - backlog.oldest).total_seconds() if backlog.oldest else 0.0
            lag.add_metric([backlog.party], waited)
        yield depth
        yield lag

        connected, total = charge_points_connected()
        yield GaugeMetricFamily(
            "chargebook_charge_points_connected",
            "Charge points connected to a csms, as the csms processes recorded them.",
            value=connected,
        )
        yield GaugeMetricFamily("chargebook_charge_points", "Charge points provisioned.", total)


def metrics_text() -> bytes:
    """The whole scrape in the Prometheus text format."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # prometheus_client's documented multiprocess setup: a registry per scrape that reads
        # every process's files.
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    database = CollectorRegistry()
    database.register(DatabaseCollector())
    return generate_latest(processes) + generate_latest(database)
