"""Test app: /close-stdio closes fds 1 and 2, as a careless app or library
does; everything else answers 200 "ok". The server's log must not follow
fd 2 to whatever takes that number next (a client's socket)."""

import os


def application(environ, start_response):
    if environ["PATH_INFO"] == "/close-stdio":
        for fd in (1, 2):
            try:
                os.close(fd)
            except OSError:
                pass
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
