"""Test app: /segv crashes the worker with SIGSEGV in the middle of a
request (after a short wait, so the request has been running a while);
everything else answers 200 "ok"."""

import ctypes
import time


def application(environ, start_response):
    if environ["PATH_INFO"] == "/segv":
        time.sleep(0.2)
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
