"""Readiness and metrics on the real processes (issue 18, "What an operator expects to see"):
the Procfile's web, workers, beat and csms on a Redis of the test's own. Ready once beat's
sweeps run on the workers and a csms reports; 503 naming the csms once it stops, and naming
Redis once Redis stops."""

from __future__ import annotations

import signal

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from monitoring.models import SweepRun
from tests.faults.conftest import procfile_process, start_web, start_workers, wait_until
from tests.monitoring.test_views import sample
from tests.ports import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def test_readiness_and_metrics_follow_the_processes(processes, redis_server):
    base = start_web(processes, redis_server.url)
    start_workers(processes, redis_server.url)
    procfile_process(processes, "beat", processes.env(redis_server.url))
    csms_port, metrics_port = free_port(), free_port()
    csms = procfile_process(
        processes, "csms",
        processes.env(redis_server.url, CSMS_PORT=str(csms_port),
                      CSMS_METRICS_PORT=str(metrics_port)),
    )  # fmt: skip

    answers: list[str] = []

    def ready() -> bool:
        response = httpx.get(f"{base}/health/ready", timeout=30)
        answers.append(response.text)
        return response.status_code == 200

    try:
        wait_until(ready, 120, "the stack to be ready")
    except AssertionError:
        raise AssertionError(f"never ready; last answer: {answers[-1:]}") from None
    body = httpx.get(f"{base}/health/ready", timeout=30).json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "postgresql": "ok", "redis": "ok", "celery": "ok", "beat": "ok", "csms": "ok",
    }  # fmt: skip
    assert body["checks"]["celery"]["workers"] == 2  # worker and ocpi
    assert body["checks"]["csms"]["processes"] == 1
    assert body["checks"]["csms"]["connected_chargers"] == 0
    # The workers recorded the sweeps beat sent them.
    assert SweepRun.objects.exists()

    # The csms counts a refused handshake on its own metrics port.
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{csms_port}/ocpp/NO-SUCH-CP", subprotocols=["ocpp1.6"])
    assert refused.value.response.status_code == 404
    csms_text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert sample(
        csms_text, "chargebook_csms_handshake_failures_total", reason="unknown_charge_point"
    ) == 1  # fmt: skip
    assert sample(csms_text, "chargebook_csms_connected_chargers") == 0

    # The web's metrics: requests counted by its worker processes (multiprocess files) and the
    # sweeps' age from the database.
    web_text = httpx.get(f"{base}/metrics", timeout=10).text
    answered = sample(
        web_text, "django_http_responses_total_by_status_view_method_total",
        method="GET", status="200", view="health-ready",
    )  # fmt: skip
    assert answered is not None and answered >= 2
    task = SweepRun.objects.first().task
    assert sample(web_text, "chargebook_sweep_age_seconds", task=task) is not None

    # The csms stops: it leaves the bus, and readiness says so.
    csms.send_signal(signal.SIGTERM)
    csms.wait(30)
    response = httpx.get(f"{base}/health/ready", timeout=30)
    assert response.status_code == 503
    assert response.json()["checks"]["csms"]["error"] == (
        "no csms process reports on the command bus"
    )
    assert response.json()["checks"]["postgresql"]["status"] == "ok"

    # Redis stops: the web still answers, with 503 naming Redis.
    redis_server.stop()
    response = httpx.get(f"{base}/health/ready", timeout=30)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["status"] == "unavailable"
    assert checks["redis"]["error"].startswith("Unable to connect to Redis")
    assert checks["celery"]["status"] == "unavailable"
    assert checks["postgresql"]["status"] == "ok"
    web_scope = httpx.get(f"{base}/health/ready?scope=web", timeout=30)
    assert web_scope.status_code == 503
    assert httpx.get(f"{base}/health/live", timeout=10).status_code == 200


def test_web_metrics_add_up_the_counts_of_every_web_process(processes, redis_server):
    port = free_port()
    env = processes.env(
        redis_server.url, WEB_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2", DEBUG="1"
    )
    procfile_process(processes, "web", env)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{base}/health/live", timeout=2).status_code == 200, 60,
               "the web to answer")  # fmt: skip
    files = processes.directory / "web-metrics"
    # Both worker processes write their counts there (prometheus_client's multiprocess mode).
    wait_until(lambda: len({p.name.rpartition("_")[2] for p in files.glob("*.db")}) >= 2, 30,
               "both web processes to count")  # fmt: skip

    def live_200(text: str) -> float:
        labels = {"method": "GET", "status": "200", "view": "health-live"}
        return sample(text, "django_http_responses_total_by_status_view_method_total", **labels)

    first = live_200(httpx.get(f"{base}/metrics", timeout=10).text)
    for _ in range(20):
        with httpx.Client() as fresh:  # a new connection each: either process may answer
            assert fresh.get(f"{base}/health/live", timeout=10).status_code == 200
    # Whichever process answers the scrape, it reports the sum over both.
    for _ in range(4):
        with httpx.Client() as fresh:
            assert live_200(fresh.get(f"{base}/metrics", timeout=10).text) == first + 20
