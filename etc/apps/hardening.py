"""Test app for the worker's hardening tests (issue 12: descriptors, forks,
aborted responses, invalid app headers).

Routes (PATH_INFO):
  /open-files  opens /dev/null until the process runs out of descriptors and
               keeps them; 200 with the number opened
  /release     closes what /open-files opened; 200 with the number closed
  /stream-raise  200 streamed without Content-Length: one chunk, then raises
  /short-cl    200 with Content-Length 1000 but only 10 bytes of body
  /huge-cl     200 with Content-Length 99999999999999999999 (does not fit u64)
  /fork-sleep  forks a child that sleeps 30 s then exits (nobody waits for
               it); 200 with the child's pid
  /fork-exit   forks a child that exits at once (nobody waits for it); 200
               with the child's pid
  /popen-wait  runs `true` with subprocess and waits for it; 200 with its
               return code (the worker must not steal the status)
  /len         reads the body; 200 with its length
  anything else: 200 "ok"
"""

import os
import subprocess
import time

_held = []


def _text(start_response, text, extra=()):
    body = text.encode("ascii")
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))] + list(extra),
    )
    return [body]


def _open_files():
    while True:
        try:
            _held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            return len(_held)


def _release():
    n = len(_held)
    while _held:
        os.close(_held.pop())
    return n


def _fork(seconds):
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(seconds)
        finally:
            os._exit(0)
    return pid


def _stream_raise():
    yield b"first chunk;" * 100
    raise RuntimeError("hardening: raised after the first chunk")


def _short():
    yield b"0123456789"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/open-files":
        return _text(start_response, str(_open_files()))
    if path == "/release":
        return _text(start_response, str(_release()))
    if path == "/stream-raise":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream_raise()
    if path == "/short-cl":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1000")])
        return _short()
    if path == "/huge-cl":
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "99999999999999999999")]
        )
        return [b"x"]
    if path == "/fork-sleep":
        return _text(start_response, str(_fork(30)))
    if path == "/fork-exit":
        return _text(start_response, str(_fork(0)))
    if path == "/popen-wait":
        time_before = time.monotonic()
        p = subprocess.Popen(["sh", "-c", "exit 3"])
        # Poll slowly, as an app checking a background job would.
        while p.poll() is None and time.monotonic() - time_before < 30:
            time.sleep(0.5)
        return _text(start_response, str(p.returncode))
    if path == "/len":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return _text(start_response, str(len(environ["wsgi.input"].read(length))))
    return _text(start_response, "ok")
