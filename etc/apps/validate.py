"""An echo app wrapped in wsgiref.validate.validator, which checks both sides
of the WSGI interface. Warnings are turned into errors so that any complaint
from the validator fails the request (500) instead of scrolling by in a log.

  GET  /        200 "validated"
  POST /        200, the request body echoed back
  GET  /stream  200, a body sent through a generator (streamed, no length)
  GET  /write   200, a body sent through start_response's write()
"""

import warnings
from wsgiref.validate import validator

warnings.simplefilter("error")


def _stream():
    yield b"streamed "
    yield b""
    yield b"body"


def inner(environ, start_response):
    path = environ["PATH_INFO"]
    if environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        first = environ["wsgi.input"].readline()
        body = first + environ["wsgi.input"].read(length - len(first))
        headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"body"]
    body = b"validated"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = validator(inner)
