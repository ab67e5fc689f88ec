"""Test app for the observability tests (stats, metrics, access log).

Routes (PATH_INFO; parameters in the query string):
  /                    200 "Hello, World!" (13 bytes, like hello.py)
  /raise               raises (the server answers 500)
  /sleep?ms=N          sleeps N ms, then 200 "slept"
  /block?until=PATH    waits until the file PATH exists (at most 60 s), then 200
  /stream?n=N          streams N chunks of 1 KiB (no Content-Length)
  /status?code=N       answers with status N and an empty body
"""

import os
import time
from urllib.parse import parse_qs

HELLO = b"Hello, World!"


def _stream(n):
    chunk = b"x" * 1024
    for _ in range(n):
        yield chunk


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))

    def param(name, default):
        return query.get(name, [default])[0]

    if path == "/raise":
        raise RuntimeError("obs_app: raised on purpose")
    if path == "/sleep":
        time.sleep(int(param("ms", "0")) / 1000)
        body = b"slept"
    elif path == "/block":
        until = param("until", "")
        deadline = time.monotonic() + 60
        while not os.path.exists(until) and time.monotonic() < deadline:
            time.sleep(0.01)
        body = b"released"
    elif path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _stream(int(param("n", "1")))
    elif path == "/status":
        start_response("%s Whatever" % param("code", "200"), [("Content-Length", "0")])
        return [b""]
    else:
        body = HELLO
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
