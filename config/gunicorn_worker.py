"""The web process's gunicorn worker: gthread's keep-alive event loop, with each request run on
the loop's own thread, and new connections going to the worker that holds the fewest.

Why not plain gthread (measured with benchmarks/ocpi_bookings.py, 2 workers, 32 connections):

- **One thread.** gthread hands every request to a pool thread and its result back through a
  pipe: two thread switches and GIL hand-offs per request. With one thread per worker (more
  measured slower on 2 cores) that bought nothing but ~0.25 ms of CPU per request.
- **Balance.** A keep-alive connection stays with the worker that accepted it, and gunicorn's
  workers race to accept. The race split 32 connections 1 to 31, 3 to 29 and 8 to 24 in
  benchmark runs (0 to 32 with a first version of this worker that had no balance): one
  worker's clients waited two to five times as long as the other's, and at 0 to 32 one core
  idled.
  Here each worker publishes how many connections it holds in memory shared by all workers
  (created when the arbiter imports this module, before it forks), and accepts only while it
  holds no more than any other live worker: HAProxy's `leastconn`, done by the workers. A
  connection the least-loaded worker leaves waiting (it is busy with a long request) is taken
  by another after `TAKEOVER_SECONDS`.

A client that stalls mid-request would hold the worker's one thread, so the client sockets
wait at most `WEB_CLIENT_TIMEOUT` seconds (default 10) for the client; gthread with one thread
waited forever. (With TLS terminated by gunicorn itself, the wrapped socket waits as gthread's
did: terminate TLS in the reverse proxy.) HTTP/2 is not served (gthread serves it only when
`http_protocols` says so).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import multiprocessing
import os
import select
import selectors
import socket
import time
from collections import deque
from concurrent.futures import Future
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

CLIENT_TIMEOUT = float(os.environ.get("WEB_CLIENT_TIMEOUT") or 10)
TAKEOVER_SECONDS = 0.05  # a waiting connection no least-loaded worker took
DECLINED_POLL_SECONDS = 0.01  # how often a worker that declines checks for such connections
LIVE_SECONDS = 2.0  # a worker whose loop has not turned for this long is busy or gone

_SLOTS = 256
# Per slot: pid, connections held, monotonic time of the worker's last loop turn.
_TABLE = multiprocessing.RawArray(ctypes.c_double, 3 * _SLOTS)
_USED = multiprocessing.RawValue(ctypes.c_int, 0)  # slots ever claimed: the ones to scan
_TABLE_LOCK = multiprocessing.Lock()


class _ClientSocket(socket.socket):
    """A client socket on which "blocking" means waiting at most CLIENT_TIMEOUT seconds, and
    which sends a response's head together with its body.

    gunicorn writes the status line and headers with one sendall and each body chunk with
    another: two sends, two TCP segments and two wake-ups of the client per response. Between
    hold() and flush() the first sendall (the head) waits for the next one (the body's first
    chunk) and goes with it; whatever else writes to the socket, and closing it, sends what is
    held first.
    """

    _holding = False
    _held = b""

    def setblocking(self, flag: bool) -> None:
        self.settimeout(CLIENT_TIMEOUT if flag else 0.0)

    def settimeout(self, value: float | None) -> None:
        # gunicorn sets the timeout five times per request, once to the value it already
        # has: a syscall saved.
        if value != self.gettimeout():
            super().settimeout(value)

    def hold(self) -> None:
        self._holding = True

    def flush(self) -> None:
        self._holding = False
        if self._held:
            data, self._held = self._held, b""
            super().sendall(data)

    def sendall(self, data, flags: int = 0) -> None:
        if self._holding:
            self._holding = False
            self._held = bytes(data)
            return
        if self._held:
            data, self._held = self._held + data, b""
        super().sendall(data, flags)

    def send(self, data, flags: int = 0) -> int:
        self.flush()
        return super().send(data, flags)

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        self.flush()
        return super().sendfile(file, offset, count)

    def shutdown(self, how: int) -> None:
        with contextlib.suppress(OSError):
            self.flush()
        super().shutdown(how)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.flush()
        super().close()


class BalancedWorker(ThreadWorker):
    """gthread's worker, one thread, least-connections accept (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        self._slot: int | None = None
        self._held = 0
        self._ready: deque[TConn] = deque()
        self._running = False
        self._waiting_since: float | None = None
        super().__init__(*args, **kwargs)

    # ThreadWorker.run() counts connections in nr_conns and accepts while
    # nr_conns < worker_connections: both are routed through the shared table here.
    @property
    def nr_conns(self) -> int:
        return self._held

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self._held = value
        if self._slot is not None:
            _TABLE[3 * self._slot + 1] = value

    @property
    def worker_connections(self) -> int:
        if self._held >= self._limit or not self._fair_to_accept():
            return self._held  # run() stops accepting
        return self._limit

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._limit = value

    def init_process(self) -> None:
        self._claim_slot()
        super().init_process()

    def _claim_slot(self) -> None:
        now = time.monotonic()
        with _TABLE_LOCK:
            for slot in range(_SLOTS):
                pid, beat = _TABLE[3 * slot], _TABLE[3 * slot + 2]
                if pid == 0 or now - beat > LIVE_SECONDS or not _alive(int(pid)):
                    _TABLE[3 * slot : 3 * slot + 3] = [os.getpid(), 0, now]
                    _USED.value = max(_USED.value, slot + 1)
                    self._slot = slot
                    return

    def notify(self) -> None:
        super().notify()
        if self._slot is not None:
            _TABLE[3 * self._slot + 2] = time.monotonic()

    def _fair_to_accept(self) -> bool:
        """Accept while no live worker holds fewer connections than this one; otherwise only
        a connection that has waited TAKEOVER_SECONDS for the others."""
        if self._slot is None:
            return True
        now, me = time.monotonic(), self._slot
        fewest = min(
            (
                _TABLE[3 * slot + 1]
                for slot in range(_USED.value)
                if slot != me and _TABLE[3 * slot] and now - _TABLE[3 * slot + 2] < LIVE_SECONDS
            ),
            default=None,
        )
        if fewest is None or self._held <= fewest:
            self._waiting_since = None
            return True
        if not select.select(self.sockets, [], [], 0)[0]:
            self._waiting_since = None
            return False
        if self._waiting_since is None:
            self._waiting_since = now
        return now - self._waiting_since >= TAKEOVER_SECONDS

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if not self._accepting:
            timeout = min(timeout, DECLINED_POLL_SECONDS)  # to look for waiting connections
        super().wait_for_and_dispatch_events(timeout)

    def _accept_waiting(self) -> None:
        """Between two requests, accept a connection that is waiting for this worker: in a
        burst of new connections each worker would otherwise take one per loop turn, which
        can mean serving every ready request in between."""
        if not self.alive or self._held >= self._limit:
            return
        # Whether a connection waits first (one syscall; a refused accept() costs an
        # exception), and the fairness scan of the shared table only when one does.
        waiting = select.select(self.sockets, [], [], 0)[0]
        if not waiting:
            self._waiting_since = None  # as _fair_to_accept() would have concluded
            return
        if self._fair_to_accept():
            for listener in waiting:
                self.accept(listener)

    def accept(self, listener: socket.socket) -> None:
        """Accept one connection and wait, on the event loop, for its first request."""
        try:
            client, addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._waiting_since = None
        conn = TConn(self.cfg, _ClientSocket(fileno=client.detach()), addr, listener.getsockname())
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )

    def enqueue_req(self, conn: TConn) -> None:
        """Serve the request now, on this thread. A connection whose next request was already
        read (pipelining) comes back here from finish_request: queued, not recursed into."""
        self._ready.append(conn)
        if self._running:
            return
        self._running = True
        try:
            while self._ready:
                conn = self._ready.popleft()
                done: Future = Future()
                held = isinstance(conn.sock, _ClientSocket)
                if held:
                    conn.sock.hold()
                try:
                    done.set_result(self.handle(conn))
                finally:
                    if held:
                        with contextlib.suppress(OSError):
                            conn.sock.flush()
                self.finish_request(conn, done)
                self._accept_waiting()
        finally:
            self._running = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
