"""Ports for the servers tests start as processes of their own (csms, web, redis-server)."""

from __future__ import annotations

import random
import socket

# Below the kernel's ephemeral range (32768-60999 on Linux), so no outgoing connection takes a
# port while a test has its server down to restart it on the same one.
PORTS = range(20000, 30000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port of 20000-29999 on 127.0.0.1 that nothing listens on now, drawn at random and never
    the same one twice in a test run: suites running side by side on one machine rarely meet,
    and a test waiting for "something listens on the port" does not find another suite's server
    there."""
    for _ in range(1000):
        port = random.choice(PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # someone else's
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")
