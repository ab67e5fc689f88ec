"""Test app that records close() calls (PEP 3333: the server calls close() on
the result exactly once, whatever happens) and serves wsgi.file_wrapper.

Every route takes ?rec=PATH: a file the app appends one line to per event,
so the test can count them. Objects whose close() is counted are kept alive
in _KEEP, so a finalizer can never stand in for the server's call.

Routes (PATH_INFO):
  /normal       an iterable (not a list) of three chunks, no length
  /disconnect   up to 400 chunks of 64 KiB with 10 ms sleeps; close() also
                records how many chunks were produced ("yielded N")
  /raise        one chunk, then RuntimeError("PEP-CLOSE-RAISE")
  /file         wsgi.file_wrapper on the real file ?path=, after seeking
                ?skip= bytes (sendfile path)
  /bytesio      wsgi.file_wrapper on a BytesIO of ?size= bytes (b"0123456789"
                repeated), block size 1000 (iteration fallback)
Lines recorded: "close" (result.close()), "yielded N", "file-close"
(the wrapped file's close()).
"""

import io
import time
from urllib.parse import parse_qs

_KEEP = []
TEXT = [("Content-Type", "application/octet-stream")]


def _record(rec, line):
    with open(rec, "a") as f:
        f.write(line + "\n")


class Recorded:
    """An iterable result with a close() that records each call."""

    def __init__(self, rec, chunks, sleep=0.0, raise_after=None):
        self.rec = rec
        self.chunks = chunks
        self.sleep = sleep
        self.raise_after = raise_after
        self.produced = 0
        _KEEP.append(self)

    def __iter__(self):
        for chunk in self.chunks:
            if self.raise_after is not None and self.produced == self.raise_after:
                raise RuntimeError("PEP-CLOSE-RAISE")
            if self.produced and self.sleep:
                time.sleep(self.sleep)
            self.produced += 1
            yield chunk

    def close(self):
        _record(self.rec, "close")
        _record(self.rec, "yielded %d" % self.produced)


class RecordingFile(io.FileIO):
    rec = None

    def close(self):
        if self.rec is not None:
            _record(self.rec, "file-close")
        super().close()


class RecordingBytesIO(io.BytesIO):
    rec = None

    def close(self):
        if self.rec is not None:
            _record(self.rec, "file-close")
        super().close()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    rec = q["rec"]
    if path == "/normal":
        start_response("200 OK", TEXT)
        return Recorded(rec, [b"a", b"b", b"c"])
    if path == "/disconnect":
        start_response("200 OK", TEXT)
        return Recorded(rec, [b"x" * 65536] * 400, sleep=0.01)
    if path == "/raise":
        start_response("200 OK", TEXT)
        return Recorded(rec, [b"first", b"second"], raise_after=1)
    if path == "/file":
        f = RecordingFile(q["path"], "r")
        f.rec = rec
        f.seek(int(q.get("skip", "0")))
        _KEEP.append(f)
        start_response("200 OK", TEXT)
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/bytesio":
        data = (b"0123456789" * (int(q["size"]) // 10 + 1))[: int(q["size"])]
        f = RecordingBytesIO(data)
        f.rec = rec
        _KEEP.append(f)
        start_response("200 OK", TEXT)
        return environ["wsgi.file_wrapper"](f, 1000)
    start_response("404 Not Found", TEXT)
    return [b"unknown route"]
