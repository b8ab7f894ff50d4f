"""The Procfile's Celery workers on a Redis of their own (issue 18, findings 1 and 2): a slow
partner does not hold up charger work, and a Redis restart under load loses no task and stops
no worker."""

from __future__ import annotations

import pytest

from locations.models import ChargePoint
from ocpi.models import Command
from tests.faults.conftest import producer, start_workers, wait_until
from tests.locations.factories import ChargePointFactory
from tests.ocpi.factories import PartyFactory
from tests.ocpi.partner import Partner

pytestmark = pytest.mark.django_db(transaction=True)


def commands(party, partner, count):
    return [
        Command.objects.create(
            party=party,
            type=Command.Type.RESERVE_NOW,
            reservation_id=f"R{n}",
            response_url=f"{partner.url}/commands/RESERVE_NOW/R{n}",
            payload={},
        )
        for n in range(count)
    ]


def test_charger_work_runs_while_a_trickling_partner_holds_the_ocpi_workers(
    processes, redis_server
):
    start_workers(processes, redis_server.url, OCPI_HTTP_DEADLINE_SECONDS="30")
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


def test_a_redis_restart_under_load_loses_no_task_and_stops_no_worker(processes, redis_server):
    start_workers(processes, redis_server.url)
    app = producer(redis_server.url)
    with Partner(answer_seconds=0.05) as partner:
        sent = commands(PartyFactory(), partner, 60)
        for command in sent:
            app.send_task("ocpi.tasks.command_result_task", kwargs={"command_id": command.pk})
        wait_until(lambda: len(partner.received) >= 5, 30, "deliveries under way")
        redis_server.stop()  # while tasks are running and unacknowledged
        redis_server.start()
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
        assert "Unrecoverable error" not in processes.log(name)
