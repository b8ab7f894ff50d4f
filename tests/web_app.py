"""A WSGI app for tests/test_gunicorn_worker.py: answers with the worker's pid, after sleeping
`?sleep=<seconds>` when asked, so a test can hold one worker busy. `?body=` asks for another
kind of response: `empty` (no body), `chunks` (streamed, no Content-Length: chunked) or `file`
(this file through wsgi.file_wrapper: sendfile)."""

import os
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    time.sleep(float(query.get("sleep", ["0"])[0]))
    kind = query.get("body", [""])[0]
    if kind == "empty":
        start_response("204 No Content", [("X-Pid", str(os.getpid()))])
        return []
    if kind == "chunks":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"{part}\n".encode() for part in ("one", "two", "three"))
    if kind == "file":
        size = os.path.getsize(__file__)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](open(__file__, "rb"))  # the server closes it
    body = f"{os.getpid()} {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
