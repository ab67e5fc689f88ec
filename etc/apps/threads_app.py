"""Test app for the --threads tests (tests/integration/threads*.rs).

Routes (PATH_INFO):
  /sleep     writes "sleep-begin <thread name>" to wsgi.errors, sleeps
             ?ms=N milliseconds (default 1000), then 200 "slept"
  /local     200 "<thread name> <n> <wsgi.multithread>": n counts this
             thread's requests in a threading.local
  /threads   200 with the names of threading.enumerate(), one per line
  /raise     raises RuntimeError (a 500 for this request only)
  /big       ?mb=N MiB (default 8) as a list: one buffered body
  /stream    ?mb=N MiB (default 8) as a generator of 64 KiB chunks
  /file      ?mb=N MiB (default 20) of a temp file through wsgi.file_wrapper
  anything else: 200 "ok"
"""

import os
import tempfile
import threading
import time

LOCAL = threading.local()


def _mb(environ, default):
    return int(environ.get("QUERY_STRING", "").partition("mb=")[2] or default)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    name = threading.current_thread().name
    if path == "/sleep":
        ms = int(environ.get("QUERY_STRING", "").partition("ms=")[2] or "1000")
        environ["wsgi.errors"].write("sleep-begin %s\n" % name)
        environ["wsgi.errors"].flush()
        time.sleep(ms / 1000)
        body = b"slept"
    elif path == "/local":
        LOCAL.n = getattr(LOCAL, "n", 0) + 1
        body = ("%s %d %s" % (name, LOCAL.n, environ["wsgi.multithread"])).encode()
    elif path == "/threads":
        body = "\n".join(t.name for t in threading.enumerate()).encode()
    elif path == "/raise":
        raise RuntimeError("boom in " + name)
    elif path == "/big":
        body = b"b" * (_mb(environ, 8) << 20)
    elif path == "/stream":
        chunks = _mb(environ, 8) * 16
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (b"s" * 65536 for _ in range(chunks))
    elif path == "/file":
        f = tempfile.TemporaryFile()
        f.truncate(_mb(environ, 20) << 20)
        f.seek(0)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f)
    else:
        body = b"ok"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]
