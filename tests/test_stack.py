"""The zero-setup stack (config/stack.py): one at a time per run dir, embedded data survives a
restart, and `make run` runs the real thing: the Procfile under supervisord, the web under
granian.

The process tests share one stack (`python -m config.stack up`, embedded Redis, a database of
its own), driven over real sockets. They run in file order: the last one stops the stack.
"""

import asyncio
import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest

from config import runner
from config import stack as config_stack
from tests.ports import free_port
from tests.supervision import supervised_pid

BASE_DIR = Path(__file__).resolve().parent.parent
START_SECONDS = 180  # migrate a new database, seed it, start every process
SLOW_CLIENTS = 10
CONCURRENT_CONNECTIONS = 32


def children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            kids.append(int(stat.parent.name))
    return kids


def tree(pid: int) -> list[int]:
    found = [pid]
    for kid in children(pid):
        found.extend(tree(kid))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(0.2)


def test_stack_second_instance_on_same_dir_refuses_clearly(tmp_path):
    env = {**os.environ, "DATABASE_URL": os.environ["DATABASE_URL"],
           "REDIS_URL": os.environ["REDIS_URL"]}  # fmt: skip
    cmd = [sys.executable, "-m", "config.stack", "exec", "--run-dir", str(tmp_path), "--"]
    first = subprocess.Popen([*cmd, sys.executable, "-c", "import time; time.sleep(20)"],
                             cwd=BASE_DIR, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "env").exists():
            assert time.monotonic() < deadline, "first stack did not start"
            time.sleep(0.1)
        second = subprocess.run([*cmd, "true"], cwd=BASE_DIR, env=env, capture_output=True,
                                text=True, timeout=30)  # fmt: skip
        assert second.returncode == 2
        assert "already running" in second.stderr
        assert str(first.pid) in second.stderr
    finally:
        first.terminate()
        first.wait(10)
    assert not (tmp_path / "env").exists()  # a stopped stack leaves no stale URLs behind


def test_stack_embedded_postgres_keeps_data_across_restart(tmp_path):
    data = tmp_path / "pg"
    url, server = config_stack.start_postgres(data)
    try:
        with psycopg.connect(server.get_uri(config_stack.DB_NAME), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
    finally:
        server.cleanup()
    url2, server2 = config_stack.start_postgres(data)
    try:
        assert url2 == url
        with psycopg.connect(server2.get_uri(config_stack.DB_NAME)) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == ("still here",)
    finally:
        server2.cleanup()


def test_stack_supervised_embedded_postgres_restarts_after_a_crash_with_its_data(tmp_path):
    # `make run` runs the embedded PostgreSQL under supervisord: killed outright, it is started
    # again at once, recovers from its WAL and keeps every committed row.
    url, server = config_stack.prepare_postgres(tmp_path / "pg")
    conf = tmp_path / "supervisord.conf"
    conf.write_text(runner.supervisord_conf({}, tmp_path, sys.executable, servers=[server]))
    supervisord = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)], cwd=BASE_DIR,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def pid() -> int:
        return supervised_pid(conf, "postgres")

    try:
        config_stack.wait_for_servers(supervisord, database_url=url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('committed before the crash')")
        first = pid()
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: pid() not in (0, first), 30, "postgres started again")
        config_stack.wait_for_servers(supervisord, database_url=url)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [
                ("committed before the crash",)
            ]
        second = pid()
    finally:
        supervisord.send_signal(signal.SIGTERM)
        output, _ = supervisord.communicate(timeout=60)
    assert "exited: postgres (terminated by SIGKILL; not expected)" in output
    assert not alive(second)  # stopping supervisord stops the server too
    assert "database system was not properly shut down" in (tmp_path / "postgres.log").read_text()


@dataclass
class Stack:
    proc: subprocess.Popen
    run_dir: Path
    database_url: str
    port: int
    csms_port: int
    output: list[str] = field(default_factory=list)

    def pid_of(self, name: str) -> int:
        return supervised_pid(self.run_dir / "supervisord.conf", name)

    def get(self, path: str, timeout: float = 10) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    def answers(self, port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    url = urlparse(os.environ["DATABASE_URL"])
    name = f"test_{url.path.lstrip('/')}_stack"
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    run_dir = tmp_path_factory.mktemp("stack")
    env = {**os.environ, "DATABASE_URL": url._replace(path=f"/{name}").geturl(),
           "REDIS_URL": "", "RUN_DIR": str(run_dir), "DEBUG": "1",
           "PORT": str(free_port()), "CSMS_PORT": str(free_port())}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.stack", "up"], cwd=BASE_DIR, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    running = Stack(proc, run_dir, env["DATABASE_URL"], int(env["PORT"]), int(env["CSMS_PORT"]))
    banner = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            running.output.append(line)
            if "Chargebook is running" in line:
                banner.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + START_SECONDS
        while not banner.wait(0.5):
            assert proc.poll() is None, "".join(running.output[-40:])
            assert time.monotonic() < deadline, "".join(running.output[-40:])
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_stack_serves_the_web_through_granian(stack):
    web = stack.pid_of("web")
    assert b"granian" in (Path("/proc") / str(web) / "cmdline").read_bytes()
    assert stack.get("/ocpi/versions").status == 401
    home = stack.get("/")
    assert home.status == 302 and "login" in home.getheader("Location")
    assert stack.get("/admin/login/").status == 200
    assert stack.get("/static/admin/css/base.css").status == 200
    assert stack.answers(stack.csms_port)


def registered_emsp(stack: Stack) -> str:
    """Register an eMSP in the stack's database; return its Authorization header."""
    token = "stack-test-emsp-token"
    code = (
        "from ocpi.models import Party, token_digest; Party.objects.update_or_create("
        "country_code='DE', party_id='TST', defaults=dict(name='Stack test eMSP', "
        f"state=Party.State.REGISTERED, token_c_digest=token_digest('{token}'), "
        "token_b='unused', endpoints=[]))"
    )
    env = {**os.environ, "RUN_DIR": str(stack.run_dir), "DATABASE_URL": stack.database_url,
           "REDIS_URL": "", "DEBUG": "1"}  # fmt: skip
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=BASE_DIR, env=env,
                   check=True, timeout=60)  # fmt: skip
    return f"Token {base64.b64encode(token.encode()).decode()}"


def test_stack_demo_chargers_connect_with_their_seeded_passwords(stack):
    # The csms refuses charge points without a password: the simulated demo chargers get in
    # with the passwords seed_demo kept for them.
    assert json.loads((stack.run_dir / "charger-passwords.json").read_text())
    with psycopg.connect(stack.database_url) as conn:

        def counts() -> tuple[int, int]:
            return conn.execute(
                "SELECT count(*) FILTER (WHERE is_connected AND password_hash <> ''), count(*) "
                "FROM locations_chargepoint"
            ).fetchone()

        deadline = time.monotonic() + 60
        while (found := counts())[0] < found[1] and time.monotonic() < deadline:
            time.sleep(0.5)
    assert found[0] == found[1] > 0, "".join(stack.output[-40:])


def test_stack_answers_32_concurrent_emsp_connections_without_a_reset(stack):
    authorization = registered_emsp(stack)
    ready = threading.Barrier(CONCURRENT_CONNECTIONS)

    def emsp(n: int) -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        conn.connect()
        ready.wait()
        statuses = []
        for k in range(5):  # keep-alive, as eMSPs do
            body = json.dumps({"country_code": "DE", "party_id": "TST",
                               "request_id": f"R-{n}-{k}", "location_id": "NOWHERE"})  # fmt: skip
            conn.request("POST", "/ocpi/cpo/2.3.0/bookings", body=body,
                         headers={"Authorization": authorization,
                                  "Content-Type": "application/json"})  # fmt: skip
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    with ThreadPoolExecutor(CONCURRENT_CONNECTIONS) as pool:
        answers = list(pool.map(emsp, range(CONCURRENT_CONNECTIONS)))  # raises on any reset
    assert len(answers) == CONCURRENT_CONNECTIONS
    assert all(status < 500 for statuses in answers for status in statuses), answers


def test_stack_answers_other_clients_while_ten_trickle_their_headers(stack):
    async def scenario() -> float:
        slow = []
        for _ in range(SLOW_CLIENTS):
            _, writer = await asyncio.open_connection("127.0.0.1", stack.port)
            writer.write(b"GET /ocpi/versions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(writer)

        async def trickle() -> None:
            for _ in range(3):
                await asyncio.sleep(1)
                for writer in slow:
                    writer.write(b"X")

        trickling = asyncio.create_task(trickle())
        await asyncio.sleep(1.5)
        began = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
        writer.write(b"GET /ocpi/versions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), timeout=5)
        took = time.monotonic() - began
        assert status.startswith(b"HTTP/1.1 401")
        writer.close()
        await trickling
        for writer in slow:
            writer.close()
        return took

    assert asyncio.run(scenario()) < 5


@pytest.mark.parametrize("name", ["web", "csms"])
def test_runner_restarts_a_killed_process(stack, name):
    port = stack.port if name == "web" else stack.csms_port
    old = stack.pid_of(name)
    old_children = children(old)
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: stack.pid_of(name) not in (0, old), 30, f"{name} restarted")
    # granian's workers do not outlive their killed main process.
    wait_until(lambda: not any(alive(pid) for pid in old_children), 10, "old workers gone")
    wait_until(lambda: stack.answers(port), 60, f"{name} answering again")
    said = f"exited: {name} (terminated by SIGKILL"
    wait_until(lambda: any(said in line for line in stack.output), 10, "the restart logged")
    if name == "web":
        assert stack.get("/ocpi/versions").status == 401


def test_stack_restarts_its_embedded_redis_and_is_ready_again(stack):
    old = stack.pid_of("redis")
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: stack.pid_of("redis") not in (0, old), 30, "redis restarted")
    said = "exited: redis (terminated by SIGKILL"
    wait_until(lambda: any(said in line for line in stack.output), 10, "the restart logged")
    # Celery, beat, the csms and the web reconnect by themselves: every health check passes.
    wait_until(lambda: stack.get("/health/ready").status == 200, 60, "ready again")


def test_stack_stops_every_process_on_sigterm(stack):
    pids = tree(stack.proc.pid)
    assert len(pids) > 8  # supervisord, the Procfile's processes, their workers, Redis
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(60) == 0
    wait_until(lambda: not any(alive(pid) for pid in pids), 10, "every process gone")
    assert not (stack.run_dir / "env").exists()
    assert not stack.answers(stack.port)
