"""The web process: granian serving Django's WSGI application (docs/adr/0001-web-server.md).

    python -m config.web        # the Procfile's `web` line, in production and under `make run`

Every setting below is one of granian's own command-line options (`granian --help`), taken
from these environment variables (an empty one means its default):

- WEB_BIND: `host:port` or `unix:/path/to/socket` (default `0.0.0.0:8000`);
- WEB_CONCURRENCY: worker processes (default: one per core);
- WEB_THREADS: threads per worker that run Django (default 2). A request waits for a free one
  after granian has read all of it, so a slow client never holds one;
- WEB_HEADER_TIMEOUT: seconds a client has to send a request's headers before granian closes
  the connection (default 10, at most 60);
- WEB_ACCESS_LOG: `1` for an access log on stdout;
- PROMETHEUS_MULTIPROC_DIR: where the worker processes keep their metrics for /metrics
  (prometheus_client's multiprocess mode; default `$RUN_DIR/web-metrics`), emptied at start.

granian calls `application()` in each worker process (`--factory`) to load Django.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

DEFAULT_BIND = "0.0.0.0:8000"
DEFAULT_THREADS = 2  # 4 cost more CPU per request in GIL hand-offs (docs/adr/0001-web-server.md)
DEFAULT_HEADER_TIMEOUT_SECONDS = 10
PARENT_CHECK_SECONDS = 1.0
WORKERS_KILL_TIMEOUT_SECONDS = 10  # a worker still busy this long after SIGTERM is killed


def _setting(environ: Mapping[str, str], name: str, default: str) -> str:
    return environ.get(name) or default


def granian_args(environ: Mapping[str, str]) -> list[str]:
    """granian's command-line arguments for the WEB_* settings in `environ`."""
    bind = _setting(environ, "WEB_BIND", DEFAULT_BIND)
    if bind.startswith("unix:"):
        address = ["--uds", bind.removeprefix("unix:")]
    else:
        host, sep, port = bind.rpartition(":")
        if not sep or not port.isdigit():
            raise SystemExit(f"WEB_BIND must be host:port or unix:/path, not {bind!r}")
        address = ["--host", host.strip("[]") or "0.0.0.0", "--port", port]
    workers = _setting(environ, "WEB_CONCURRENCY", str(os.cpu_count() or 2))
    threads = _setting(environ, "WEB_THREADS", str(DEFAULT_THREADS))
    header_timeout = float(
        _setting(environ, "WEB_HEADER_TIMEOUT", str(DEFAULT_HEADER_TIMEOUT_SECONDS))
    )
    access_log = _setting(environ, "WEB_ACCESS_LOG", "").lower() in {"1", "true", "yes", "on"}
    return [
        "--interface", "wsgi",
        *address,
        "--workers", workers,
        "--blocking-threads", threads,
        # HTTP/1.1 only: the proxy in front speaks it to us, and its header timeout is the
        # one granian enforces.
        "--http", "1",
        "--no-ws",
        "--http1-header-read-timeout", str(round(header_timeout * 1000)),
        "--respawn-failed-workers",
        "--workers-kill-timeout", str(WORKERS_KILL_TIMEOUT_SECONDS),
        "--access-log" if access_log else "--no-access-log",
        "--factory",
        "config.web:application",
    ]  # fmt: skip


def stop_with_parent(parent: int) -> None:
    """Send this process SIGTERM once `parent` is no longer its parent.

    granian's worker processes outlive a main process that was killed outright (SIGKILL, the
    OOM killer) and keep serving on the shared port beside its restarted successor. systemd
    stops them with the unit's control group; supervisord (`make run`) does not.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


def application() -> Callable:
    """Django's WSGI application, loaded in a granian worker process."""
    parent = multiprocessing.parent_process()
    stop_with_parent(parent.pid if parent and parent.pid else os.getppid())
    from config.wsgi import application as wsgi_application

    # Everything loaded so far (Django, the URL and model registries) stays for the life of the
    # worker: out of the collector's reach, its full passes scan only what requests leave
    # behind (docs/adr/0003-prepared-statements-and-hot-reads.md).
    gc.freeze()
    return wsgi_application


def metrics_dir(environ: Mapping[str, str]) -> Path:
    """The multiprocess metrics directory, emptied: prometheus_client asks for it to be wiped
    before the processes start, so that a restart does not add up old counts."""
    run_dir = environ.get("RUN_DIR") or str(Path(__file__).resolve().parent.parent / ".run")
    directory = Path(environ.get("PROMETHEUS_MULTIPROC_DIR") or Path(run_dir) / "web-metrics")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory


def main() -> None:
    """Replace this process with granian, so that signals reach granian itself."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir(os.environ))
    argv = [sys.executable, "-m", "granian", *granian_args(os.environ)]
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    main()
