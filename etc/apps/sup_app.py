"""Test app for the supervision tests (tests/integration/supervision.rs).

Every response carries `X-Pid: <worker pid>`, so a client can tell which
worker served it. Routes (PATH_INFO):
  /sleep   writes "sleep-begin pid=<pid>" to wsgi.errors, sleeps ?ms=N
           milliseconds (default 1000), then 200 "slept"
  /segv    crashes the worker with a segmentation fault (reads address 0)
  /hog     allocates ?mb=N MiB (default 150), touched so it is resident,
           and keeps it for the life of the worker; 200 "held"
  anything else: 200 with the body VERSION (the reload tests copy this file
           and rewrite that line)
"""

import ctypes
import os
import time

VERSION = "v1"
HELD = []


def application(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        ms = int(environ.get("QUERY_STRING", "").partition("ms=")[2] or "1000")
        environ["wsgi.errors"].write("sleep-begin pid=%d\n" % os.getpid())
        environ["wsgi.errors"].flush()
        time.sleep(ms / 1000)
        body = b"slept"
    elif environ["PATH_INFO"] == "/segv":
        ctypes.string_at(0)
        body = b"unreachable"
    elif environ["PATH_INFO"] == "/hog":
        mb = int(environ.get("QUERY_STRING", "").partition("mb=")[2] or "150")
        HELD.append(b"x" * (mb << 20))
        body = b"held"
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
