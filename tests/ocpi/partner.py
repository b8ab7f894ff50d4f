"""A partner that misbehaves, on a real socket: it trickles its answers a byte at a time, and
counts what it receives and how many requests it serves at once."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Partner:
    def __init__(self, *, trickle_seconds: float = 0.0, answer_seconds: float = 0.0) -> None:
        self.trickle_seconds = trickle_seconds  # between bytes of the answer
        self.answer_seconds = answer_seconds  # before answering at all
        self.received: list[tuple[str, str, object]] = []
        self.in_flight = 0
        self.closing = False  # set on exit: a trickle stops and its connection closes
        self.most_in_flight = 0
        self._lock = threading.Lock()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with partner._lock:
                    partner.received.append((self.command, self.path, body))
                    partner.in_flight += 1
                    partner.most_in_flight = max(partner.most_in_flight, partner.in_flight)
                try:
                    time.sleep(partner.answer_seconds)
                    answer = json.dumps({"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z"})
                    raw = (
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n{answer}"
                    ).encode()
                    if partner.trickle_seconds:
                        for i in range(len(raw)):
                            if partner.closing:
                                return
                            self.wfile.write(raw[i : i + 1])
                            self.wfile.flush()
                            time.sleep(partner.trickle_seconds)
                    else:
                        self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # we gave up on it: that is the point
                finally:
                    with partner._lock:
                        partner.in_flight -= 1

            do_GET = do_PUT = do_POST = _serve

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> Partner:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing = True
        self.server.shutdown()
        self.server.server_close()
