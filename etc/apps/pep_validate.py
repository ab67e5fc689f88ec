"""Apps wrapped in wsgiref.validate.validator for the parts of PEP 3333 that
etc/apps/validate.py (GET, POST, generator, write()) does not exercise.
Warnings are errors, so any complaint from the validator becomes a 500.

Routes (PATH_INFO):
  /file?path=P    wsgi.file_wrapper on the real file P
  /bytesio        wsgi.file_wrapper on a BytesIO of b"bytesio body"
  /exc-info       start_response 200, then a handled exception and
                  start_response("500 Handled", ..., exc_info): "handled"
  POST /lines     reads the body with readline(4), readline(), readlines(1)
                  and iteration; echoes the lines joined with "|"
  /stream         a generator body (for HEAD and HTTP/1.0)
"""

import io
import sys
import warnings
from urllib.parse import parse_qs
from wsgiref.validate import validator

warnings.simplefilter("error")

TEXT = [("Content-Type", "text/plain")]


def _stream():
    yield b"streamed "
    yield b"through the validator"


def _lines(inp):
    parts = [inp.readline(4), inp.readline()]
    parts.extend(inp.readlines(1))
    parts.extend(line for line in inp)
    return b"|".join(parts)


def inner(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/file":
        query = parse_qs(environ["QUERY_STRING"])
        start_response("200 OK", TEXT)
        return environ["wsgi.file_wrapper"](open(query["path"][0], "rb"))
    if path == "/bytesio":
        start_response("200 OK", TEXT)
        return environ["wsgi.file_wrapper"](io.BytesIO(b"bytesio body"), 5)
    if path == "/exc-info":
        start_response("200 OK", TEXT)
        try:
            raise KeyError("handled by the app")
        except KeyError:
            start_response("500 Handled", TEXT, sys.exc_info())
        return [b"handled"]
    if path == "/lines":
        body = _lines(environ["wsgi.input"])
        start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", TEXT)
        return _stream()
    start_response("404 Not Found", TEXT)
    return [b"unknown route"]


application = validator(inner)
