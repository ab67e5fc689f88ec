"""Test app for the worker-core review tests (tests/integration/threads_review.rs).

Every streamed result is a `Tracked` iterable whose close() writes
"closed <tag>" to stderr, so a test can count close() calls.

Routes (PATH_INFO, query ?n=chunks&kb=chunk size&tag=name&ms=delay):
  /stream    n chunks of kb KiB (a Tracked iterable)
  /raise     like /stream, but raises after n chunks
  /trickle   n chunks of kb KiB, ms milliseconds apart (an event stream);
             the first chunk is ?first KiB if given
  /write     write() n chunks of kb KiB, then returns []
  /shrink    a temp file of n KiB through wsgi.file_wrapper, truncated to
             1 KiB ms milliseconds later (while it is being sent)
  anything else: 200 "ok"
"""

import os
import sys
import tempfile
import threading
import time
from urllib.parse import parse_qs


def _log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class Tracked:
    def __init__(self, tag, n, size, raise_at=None, delay=0.0, first=None):
        self.tag, self.n, self.size, self.first = tag, n, size, first
        self.raise_at, self.delay = raise_at, delay

    def __iter__(self):
        for i in range(self.n):
            if self.raise_at is not None and i == self.raise_at:
                raise RuntimeError("review: raised mid-stream")
            if i and self.delay:
                time.sleep(self.delay)
            yield b"x" * (self.first if i == 0 and self.first else self.size)

    def close(self):
        _log("closed %s" % self.tag)


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ["PATH_INFO"]
    n = int(q.get("n", "64"))
    size = int(q.get("kb", "64")) * 1024
    tag = q.get("tag", "-")
    if path in ("/stream", "/raise", "/trickle"):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if path == "/raise":
            return Tracked(tag, n + 1, size, raise_at=n)
        delay = int(q.get("ms", "0")) / 1000 if path == "/trickle" else 0.0
        first = int(q.get("first", "0")) * 1024
        return Tracked(tag, n, size, delay=delay, first=first)
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for _ in range(n):
            write(b"w" * size)
        _log("write-done %s" % tag)
        return []
    if path == "/shrink":
        f = tempfile.TemporaryFile()
        f.truncate(n * 1024)
        f.seek(0)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        # Shrinks while the I/O side sends it to a slow reader.
        # (through a duplicate: the server closes the wrapper's file)
        fd = os.dup(f.fileno())

        def shrink():
            os.ftruncate(fd, 1024)
            os.close(fd)
            _log("shrunk")

        threading.Timer(int(q.get("ms", "200")) / 1000, shrink).start()
        return environ["wsgi.file_wrapper"](f)
    body = b"ok"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]
