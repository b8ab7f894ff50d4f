"""A WSGI app for tests/test_gunicorn_worker.py: answers with the worker's pid, after sleeping
`?sleep=<seconds>` when asked, so a test can hold one worker busy."""

import os
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    time.sleep(float(query.get("sleep", ["0"])[0]))
    body = f"{os.getpid()} {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
