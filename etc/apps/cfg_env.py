"""Test app for tests/integration/config.rs: what the worker's process sees.

Routes (PATH_INFO):
  /          200, "UID GID" of the worker process (os.getuid(), os.getgid())
  /NAME      200, the value of the environment variable NAME, or "<unset>"
"""

import os


def application(environ, start_response):
    name = environ["PATH_INFO"].lstrip("/")
    if name:
        text = os.environ.get(name, "<unset>")
    else:
        text = "%d %d" % (os.getuid(), os.getgid())
    body = text.encode("utf-8", "replace")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
