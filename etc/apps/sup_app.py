"""Test app for the supervision tests (tests/integration/supervision.rs).

Every response carries `X-Pid: <worker pid>`, so a client can tell which
worker served it. Routes (PATH_INFO):
  /sleep   writes "sleep-begin pid=<pid>" to wsgi.errors, sleeps ?ms=N
           milliseconds (default 1000), then 200 "slept"
  anything else: 200 with the body VERSION (the reload tests copy this file
           and rewrite that line)
"""

import os
import time

VERSION = "v1"


def application(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        ms = int(environ.get("QUERY_STRING", "").partition("ms=")[2] or "1000")
        environ["wsgi.errors"].write("sleep-begin pid=%d\n" % os.getpid())
        environ["wsgi.errors"].flush()
        time.sleep(ms / 1000)
        body = b"slept"
    else:
        body = VERSION.encode("ascii")
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Pid", str(os.getpid())),
        ],
    )
    return [body]
