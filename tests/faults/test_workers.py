"""The Procfile's Celery workers on a Redis of their own (issue 18, findings 1 and 2): a slow
partner does not hold up charger work, and Redis restarts under load stop no worker; what a
restart drops in flight, the sweeps send again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from locations.models import ChargePoint
from ocpi.models import Command
from tests.faults.conftest import producer, start_workers, wait_until
from tests.locations.factories import ChargePointFactory
from tests.ocpi.factories import PartyFactory
from tests.ocpi.partner import Partner

pytestmark = pytest.mark.django_db(transaction=True)


def commands(party, partner, count):
    """Commands whose CommandResult is due (received long enough ago for the sweep to see)."""
    made = [
        Command.objects.create(
            party=party,
            type=Command.Type.RESERVE_NOW,
            reservation_id=f"R{n}",
            response_url=f"{partner.url}/commands/RESERVE_NOW/R{n}",
            payload={},
        )
        for n in range(count)
    ]
    Command.objects.filter(pk__in=[c.pk for c in made]).update(
        received_at=timezone.now() - timedelta(minutes=2)
    )
    return made


def test_charger_work_runs_while_a_trickling_partner_holds_the_ocpi_workers(
    processes, redis_server
):
    start_workers(processes, redis_server.url, OUTBOUND_HTTP_DEADLINE_SECONDS="30")
    app = producer(redis_server.url)
    lost = ChargePointFactory(is_connected=True)  # no csms holds it: the check marks it offline
    with Partner(trickle_seconds=1) as partner:
        for command in commands(PartyFactory(), partner, 4):
            app.send_task("ocpi.tasks.command_result_task", kwargs={"command_id": command.pk})
        wait_until(lambda: partner.in_flight == 2, 30, "both ocpi processes stuck at the partner")
        app.send_task("chargers.tasks.mark_lost_connections_task")
        wait_until(
            lambda: not ChargePoint.objects.get(pk=lost.pk).is_connected, 30, "the charger check"
        )
        # Done while the partner still holds both ocpi processes: nothing waited behind it.
        assert partner.in_flight == 2
        assert Command.objects.filter(result_sent_at__isnull=False).count() == 0


def test_redis_restarts_under_load_stop_no_worker_and_every_result_is_sent(processes, redis_server):
    start_workers(processes, redis_server.url)
    app = producer(redis_server.url)
    with Partner(answer_seconds=0.2) as partner:
        sent = commands(PartyFactory(), partner, 60)
        for command in sent:
            app.send_task("ocpi.tasks.command_result_task", kwargs={"command_id": command.pk})
        for received in (5, 15, 25):
            wait_until(lambda n=received: len(partner.received) >= n, 30, "deliveries under way")
            redis_server.stop()  # while tasks are running and unacknowledged
            redis_server.start()
        # A message Redis handed out as the connection broke is gone with it: the beat sweep
        # (every 30 s) queues every result not yet sent again.
        app.send_task("ocpi.tasks.command_results_sweep_task")
        wait_until(
            lambda: not Command.objects.filter(result_sent_at__isnull=True).exists(),
            60, "every command result sent",
        )  # fmt: skip
        # The worker is still there to take new work after the restart.
        app.send_task("ocpi.tasks.command_result_task", kwargs={"command_id": sent[0].pk})
        lost = ChargePointFactory(is_connected=True)
        app.send_task("chargers.tasks.mark_lost_connections_task")
        wait_until(lambda: not ChargePoint.objects.get(pk=lost.pk).is_connected, 30, "new work")
    received = {path for _, path, _ in partner.received}
    assert received == {f"/commands/RESERVE_NOW/R{n}" for n in range(60)}
    for process in processes.started:
        assert process.poll() is None, "a worker exited"
    for name in ("worker", "ocpi"):
        log = processes.log(name)
        assert "Connection to broker lost" in log  # the restart did reach the workers
        assert "Unrecoverable error" not in log
        assert "Error on restarting" not in log  # celery 5.7.0: its Gossip step, every time
