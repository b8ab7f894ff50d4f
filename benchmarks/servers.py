"""Start the web server for a benchmark: the production command, or a candidate to compare.

`production` runs the `web:` line of the Procfile through `sh -c`, as a Procfile runner does,
with WEB_BIND pointing at the benchmark's port. The others are the candidates that
docs/adr/0001-web-server.md compared, each started as its own documentation shows:

- `gthread`: gunicorn's threaded worker, WSGI (`--threads` threads per worker);
- `uvicorn`: gunicorn with the uvicorn worker, Django's ASGI application, without persistent
  database connections (benchmarks/asgi_settings.py);
- `granian`: granian's WSGI interface, `--threads` blocking threads per worker.

Every candidate runs as many worker processes as the machine has cores. gunicorn and the
uvicorn worker are not dependencies of the project: `pip install gunicorn uvicorn-worker` to
compare them.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("production", "gthread", "uvicorn", "granian")


def procfile_command(name: str) -> str:
    """The command line of one process type in the Procfile."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        kind, sep, command = line.partition(":")
        if sep and kind.strip() == name:
            return command.strip()
    raise SystemExit(f"Procfile has no {name!r} process")


def command(server: str, port: int, threads: int) -> list[str]:
    """The argv that starts `server` on 127.0.0.1:port."""
    py, workers = sys.executable, str(os.cpu_count() or 2)
    bind = f"127.0.0.1:{port}"
    if server == "production":
        return ["sh", "-c", f"exec {procfile_command('web')}"]
    if server == "gthread":
        return [py, "-m", "gunicorn", "config.wsgi", "-k", "gthread", "-w", workers,
                "--threads", str(threads), "--keep-alive", "30", "-b", bind]  # fmt: skip
    if server == "uvicorn":
        return [py, "-m", "gunicorn", "config.asgi", "-k", "uvicorn_worker.UvicornWorker",
                "-w", workers, "--keep-alive", "30", "-b", bind]  # fmt: skip
    if server == "granian":
        return [py, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", workers, "--blocking-threads", str(threads),
                "config.wsgi:application"]  # fmt: skip
    raise SystemExit(f"unknown server {server!r}; one of {', '.join(SERVERS)}")


def start(server: str, port: int, threads: int = 8, **env: str) -> subprocess.Popen:
    """Start `server` in its own session (stop it with os.killpg) and wait until it listens."""
    environ = {**os.environ, "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "ERROR",
               "SECURE_SSL_REDIRECT": "0", "WEB_BIND": f"127.0.0.1:{port}", **env}  # fmt: skip
    # The Procfile's `python` is this environment's, as it is under `make run`.
    environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", "")])
    if server == "uvicorn":
        environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.asgi_settings"
    argv = command(server, port, threads)
    print(f"server: {server}: {shlex.join(argv)}", flush=True)
    proc = subprocess.Popen(argv, cwd=ROOT, env=environ, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{server} exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    raise SystemExit(f"{server} did not listen on port {port} within 60 s")
