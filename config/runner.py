"""Run the Procfile's processes under supervisord, which restarts any that exits.

    python -m config.runner conf --run-dir DIR [--only web,worker,...]  # print supervisord.conf
    supervisord -c DIR/supervisord.conf                                 # run them (foreground)
    python -m config.runner log                                         # supervisord runs this

The Procfile declares each process once, as a shell command (`$VAR` expands). supervisord
starts them in the Procfile's order (and stops them in reverse), restarts one that exits and
logs that it did. To stop one it signals the process itself (granian and Celery stop their own
children) and kills its whole process group if it has not exited after STOP_WAIT_SECONDS. The
processes' output reaches supervisord's stdout through the `log` event listener, each line
after the process's name. `make run`'s embedded PostgreSQL and Redis run under the same
supervisord as `Server`s: started before the Procfile's processes, stopped after them, and
restarted like them; their own output goes to `<run dir>/<name>.log`.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shlex
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

BASE_DIR = Path(__file__).resolve().parent.parent
PROCFILE = BASE_DIR / "Procfile"
STOP_WAIT_SECONDS = 20  # then supervisord kills the process group
LISTENER_BUFFER_EVENTS = 10_000  # output chunks queued for the log listener before any is lost


@dataclass(frozen=True)
class Server:
    """A database or cache server that supervisord runs in the foreground and restarts."""

    name: str
    argv: list[str]
    stop_signal: str = "TERM"  # PostgreSQL: INT, its fast shutdown (TERM waits for clients)
    user: str | None = None  # PostgreSQL refuses to run as root; supervisord switches user


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """Process names and commands of a Procfile, in its order."""
    processes: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip().isidentifier() or not command.strip():
            raise ValueError(f"{path}: not a `name: command` line: {line!r}")
        processes[name.strip()] = command.strip()
    return processes


def _value(text: str) -> str:
    # supervisord expands %(name)s in its values: a literal % is written %%.
    return text.replace("%", "%%")


def supervisord_conf(
    processes: Mapping[str, str],
    run_dir: Path,
    python: str,
    *,
    servers: Sequence[Server] = (),
    autostart: bool = True,
) -> str:
    """supervisord's configuration for `servers` and `processes` (name -> shell command).

    Servers start first and stop last. With `autostart` false the processes wait for
    `supervisorctl start` (`make run` migrates the database first).
    """
    sock = run_dir / "supervisor.sock"
    password = secrets.token_hex(16)  # for supervisorctl; keep the file private
    sections = [
        f"""[supervisord]
nodaemon = true
user = {pwd.getpwuid(os.getuid()).pw_name}
directory = {_value(str(BASE_DIR))}
logfile = {_value(str(run_dir / "supervisord.log"))}
logfile_maxbytes = 10MB
logfile_backups = 2
pidfile = {_value(str(run_dir / "supervisord.pid"))}

[unix_http_server]
file = {_value(str(sock))}
chmod = 0700
username = supervisor
password = {password}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://{_value(str(sock))}
username = supervisor
password = {password}

[eventlistener:log]
command = {_value(shlex.join([python, "-m", "config.runner", "log"]))}
directory = {_value(str(BASE_DIR))}
events = PROCESS_LOG
buffer_size = {LISTENER_BUFFER_EVENTS}
priority = 1
autorestart = true
stderr_logfile = /dev/stdout
stderr_logfile_maxbytes = 0
"""
    ]
    for order, server in enumerate(servers, start=1):
        user = f"user = {server.user}\n" if server.user else ""
        sections.append(
            f"""[program:{server.name}]
command = {_value(shlex.join(server.argv))}
directory = {_value(str(BASE_DIR))}
{user}priority = {10 + order}
autorestart = true
startsecs = 2
startretries = 10
stopsignal = {server.stop_signal}
stopwaitsecs = {STOP_WAIT_SECONDS}
killasgroup = true
redirect_stderr = true
stdout_logfile = {_value(str(run_dir / f"{server.name}.log"))}
stdout_logfile_maxbytes = 10MB
stdout_logfile_backups = 2
"""
        )
    for order, (name, command) in enumerate(processes.items(), start=1):
        sections.append(
            f"""[program:{name}]
command = /bin/sh -c {_value(shlex.quote("exec " + command))}
directory = {_value(str(BASE_DIR))}
priority = {100 + order}
autostart = {str(autostart).lower()}
autorestart = true
startsecs = 1
startretries = 5
stopsignal = TERM
stopwaitsecs = {STOP_WAIT_SECONDS}
stopasgroup = false
killasgroup = true
redirect_stderr = true
stdout_logfile = NONE
stdout_events_enabled = true
"""
        )
    return "\n".join(sections)


def _prefixed(name: str, lines: Iterable[bytes]) -> bytes:
    return b"".join(f"{name:>8} | ".encode() + line for line in lines)


def log_listener(events: BinaryIO, replies: BinaryIO, out: BinaryIO) -> None:
    """Write the output of supervisord's processes to `out`, each line after its process's name.

    supervisord's event listener protocol: say READY, read a header line and `len` bytes of
    payload (a header line of its own, then the output), answer RESULT.
    """
    partial: dict[str, bytes] = {}  # output after a process's last newline, by process
    while True:
        replies.write(b"READY\n")
        replies.flush()
        header = events.readline()
        if not header:
            return
        fields = dict(item.split(b":", 1) for item in header.split())
        payload = events.read(int(fields[b"len"]))
        event_header, _, data = payload.partition(b"\n")
        if fields[b"eventname"].startswith(b"PROCESS_LOG"):
            meta = dict(item.split(b":", 1) for item in event_header.split())
            name = meta[b"processname"].decode()
            *lines, rest = (partial.pop(name, b"") + data).split(b"\n")
            if len(rest) > 65536:  # a process writing without newlines
                lines, rest = [*lines, rest], b""
            if rest:
                partial[name] = rest
            if lines:
                out.write(_prefixed(name, (line + b"\n" for line in lines)))
                out.flush()
        replies.write(b"RESULT 2\nOK")
        replies.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.runner")
    sub = parser.add_subparsers(dest="action", required=True)
    conf = sub.add_parser("conf", help="print supervisord.conf for the Procfile")
    conf.add_argument("--run-dir", required=True, help="for supervisord's socket, pid and log")
    conf.add_argument("--only", default="", help="comma-separated process names (default: all)")
    sub.add_parser("log", help="the event listener supervisord runs for the processes' output")
    args = parser.parse_args(argv)
    if args.action == "log":
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # supervisord stopping
        log_listener(sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer)
        return 0
    processes = read_procfile()
    if args.only:
        wanted = args.only.split(",")
        processes = {name: cmd for name, cmd in processes.items() if name in wanted}
    sys.stdout.write(supervisord_conf(processes, Path(args.run_dir).resolve(), sys.executable))
    return 0


if __name__ == "__main__":
    sys.exit(main())
