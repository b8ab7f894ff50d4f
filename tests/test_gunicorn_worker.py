"""The web process's gunicorn worker (config/gunicorn_worker.py), run by a real gunicorn with
config/gunicorn.py, over real sockets: keep-alive, pipelining, connections balanced across the
workers, a busy worker's share taken by another, and a stalled client cut off."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, workers: int, **env: str):
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "tests.web_app",
             "-b", f"127.0.0.1:{self.port}", "-w", str(workers), "--log-level", "warning"],
            cwd=BASE_DIR, env={**os.environ, **env}, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            assert self.proc.poll() is None, "gunicorn exited"
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        # Every worker must be in its loop before the tests count connections per worker.
        deadline = time.monotonic() + 30
        while len(self.pids()) < workers:
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.1)
        time.sleep(0.5)

    def pids(self) -> set[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return {int(p) for p in out.stdout.split()}

    def connect(self) -> Client:
        return Client(self.port)

    def stop(self) -> int:
        os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout=30)


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buffer = b""

    def send(self, path: str = "/") -> None:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())

    def response(self) -> tuple[int, str, dict[str, str]]:
        """(pid of the worker that answered, path it answered, headers)."""
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 200"), lines[0]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length].decode(), self.buffer[length:]
        pid, path = body.split(" ", 1)
        return int(pid), path, headers

    def get(self, path: str = "/") -> int:
        self.send(path)
        return self.response()[0]

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        self.buffer += data

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server():
    srv = Server(workers=2)
    yield srv
    assert srv.stop() == 0


def test_keep_alive_connection_serves_many_requests_on_one_worker(server):
    client = server.connect()
    pids = {client.get(f"/{n}") for n in range(5)}
    assert len(pids) == 1 and pids <= server.pids()
    client.close()


def test_pipelined_requests_answered_in_order(server):
    client = server.connect()
    requests = (f"GET /p{n} HTTP/1.1\r\nHost: t\r\n\r\n" for n in range(50))
    client.sock.sendall("".join(requests).encode())  # in one write: one read sees them all
    assert [client.response()[1] for _ in range(50)] == [f"/p{n}" for n in range(50)]
    client.close()


def test_connections_are_spread_evenly_over_the_workers(server):
    clients = [server.connect() for _ in range(12)]
    try:
        for c in clients:
            c.send()
        owners = [c.response()[0] for c in clients]
        assert sorted(owners.count(pid) for pid in server.pids()) == [6, 6]
        # The connections stay where they are: every later request goes to the same worker.
        for c, owner in zip(clients, owners, strict=True):
            assert c.get() == owner
    finally:
        for c in clients:
            c.close()


def test_a_busy_worker_does_not_keep_a_new_connection_waiting(server):
    busy = server.connect()
    busy.send("/slow?sleep=4")  # holds its worker; the other worker now holds fewer
    time.sleep(0.3)
    others = [server.connect() for _ in range(3)]
    try:
        answered = [c.get() for c in others]
        # Balance would send one of the three to the busy worker; instead the free worker
        # took them all and answered them while the slow request still ran.
        slow_pid, _, _ = busy.response()
        assert set(answered) == server.pids() - {slow_pid}
    finally:
        for c in [busy, *others]:
            c.close()


def test_a_client_that_stalls_mid_request_is_cut_off():
    srv = Server(workers=1, WEB_CLIENT_TIMEOUT="1")
    try:
        stalled = srv.connect()
        stalled.sock.sendall(b"GET /stalled HTTP/1.1\r\nHost: t\r\n")  # headers never end
        time.sleep(0.2)
        other = srv.connect()
        assert other.get("/other") in srv.pids()  # served once the stalled client is dropped
        assert stalled.closed_by_server()
        other.close()
    finally:
        assert srv.stop() == 0


def test_stopping_answers_the_request_in_flight():
    srv = Server(workers=2)
    client = srv.connect()
    client.send("/last?sleep=1")
    time.sleep(0.3)
    os.killpg(srv.proc.pid, signal.SIGTERM)
    assert client.response()[1] == "/last"
    assert client.closed_by_server()
    assert srv.proc.wait(timeout=30) == 0


def _raw_response(client: Client, request: bytes, done: bytes) -> bytes:
    """Send a raw request and read until `done` ends what arrived."""
    client.sock.sendall(request)
    while not client.buffer.endswith(done):
        client._read()
    raw, client.buffer = client.buffer, b""
    return raw


def test_responses_without_body_streamed_and_from_files_arrive_whole(server):
    """The worker holds each response's head back for its body's first chunk (one send): a
    response with no body, a streamed one and a sendfile one still arrive whole, in order,
    and the connection serves the next request."""
    client = server.connect()
    empty = _raw_response(client, b"GET /?body=empty HTTP/1.1\r\nHost: t\r\n\r\n", b"\r\n\r\n")
    assert empty.startswith(b"HTTP/1.1 204 No Content\r\n") and b"X-Pid: " in empty
    streamed = _raw_response(client, b"GET /?body=chunks HTTP/1.1\r\nHost: t\r\n\r\n", b"0\r\n\r\n")
    head, _, body = streamed.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"4\r\none\n\r\n4\r\ntwo\n\r\n6\r\nthree\n\r\n0\r\n\r\n"
    source = (BASE_DIR / "tests" / "web_app.py").read_bytes()
    from_file = _raw_response(client, b"GET /?body=file HTTP/1.1\r\nHost: t\r\n\r\n", source)
    head, _, body = from_file.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(source)}".encode() in head and body == source
    head_only = _raw_response(client, b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n", b"\r\n\r\n")
    assert head_only.startswith(b"HTTP/1.1 200 OK\r\n")
    assert client.get("/after")  # still keep-alive
    client.close()


def test_held_head_goes_out_with_the_first_body_chunk():
    from config.gunicorn_worker import _ClientSocket

    ours, peer = socket.socketpair()
    sock = _ClientSocket(fileno=ours.detach())
    peer.settimeout(5)
    try:
        sock.hold()
        sock.sendall(b"HEAD\r\n\r\n")
        assert not select.select([peer], [], [], 0.2)[0]  # nothing on the wire yet
        sock.sendall(b"body")
        time.sleep(0.05)
        assert peer.recv(100) == b"HEAD\r\n\r\nbody"  # one send
        sock.sendall(b"more")  # after the first chunk, writes go straight out
        assert peer.recv(100) == b"more"
        sock.hold()
        sock.sendall(b"HEAD2\r\n\r\n")
        sock.flush()  # the end of a response with no body
        assert peer.recv(100) == b"HEAD2\r\n\r\n"
        sock.hold()
        sock.sendall(b"HEAD3\r\n\r\n")
        sock.close()  # closing sends what is held first
        assert peer.recv(100) == b"HEAD3\r\n\r\n"
    finally:
        sock.close()
        peer.close()
