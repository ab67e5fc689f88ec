"""Test app for the response side of PEP 3333: start_response, write(),
exc_info, invalid heads, streaming and wsgi.errors.

Routes (PATH_INFO):
  /write            write(b"from write; ") then returns [b"from iterable"]
  /twice            calls start_response twice without exc_info
  /exc-replace      start_response 200 + X-Original, then (in an except block)
                    start_response("503 Replaced", X-Replaced, exc_info): "replaced"
  /exc-after-head   streams b"first", then calls start_response with exc_info of
                    ValueError("PEP-EXC-AFTER-HEAD"), which must re-raise it
  /bad-status-str   status "200"           /bad-status-int  status 200
  /headers-tuple    headers as a tuple     /header-int      a header value 5
  /header-crlf      a value with CRLF and an injected header
  /hop-by-hop       sets Transfer-Encoding: chunked
  /hop-by-hop-lower sets keep-alive: timeout=5 (lower case)
  /header-euro      a value with U+20AC, outside latin-1
  /header-bad-name  a header name with a space
  /header-latin1    200 with X-Latin: "caf\xe9" (one latin-1 byte on the wire)
  /conn-close       sets Connection: close (and Content-Length)
  /stream           a generator: b"one ", b"", b"two ", b"three" (no length)
  /stream-sleep     a generator: b"first", sleeps 1 s, b"second"
  /errors           writes lines to wsgi.errors (write, writelines, flush)
  anything else     200 "ok"
"""

import sys
import time

TEXT = [("Content-Type", "text/plain")]


def _bad_head(path):
    return {
        "/bad-status-str": ("200", TEXT),
        "/bad-status-int": (200, TEXT),
        "/headers-tuple": ("200 OK", tuple(TEXT)),
        "/header-int": ("200 OK", TEXT + [("X-Number", 5)]),
        "/header-crlf": ("200 OK", TEXT + [("X-Evil", "a\r\nX-Injected: yes")]),
        "/hop-by-hop": ("200 OK", TEXT + [("Transfer-Encoding", "chunked")]),
        "/hop-by-hop-lower": ("200 OK", TEXT + [("keep-alive", "timeout=5")]),
        "/header-euro": ("200 OK", TEXT + [("X-Euro", "\u20ac")]),
        "/header-bad-name": ("200 OK", TEXT + [("X Bad", "v")]),
    }.get(path)


def _stream():
    yield b"one "
    yield b""
    yield b"two "
    yield b"three"


def _stream_sleep():
    yield b"first"
    time.sleep(1)
    yield b"second"


def _exc_after_head(start_response):
    start_response("200 OK", TEXT)
    yield b"first"
    try:
        raise ValueError("PEP-EXC-AFTER-HEAD")
    except ValueError:
        start_response("500 Internal Server Error", TEXT, sys.exc_info())
    yield b"never sent"


def _errors(environ):
    errors = environ["wsgi.errors"]
    errors.write("PEP-ERRORS line one\n")
    errors.writelines(["PEP-ERRORS line two\n", "PEP-ERRORS line three\n"])
    errors.write("PEP-ERRORS partial")
    errors.flush()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    bad = _bad_head(path)
    if bad is not None:
        start_response(*bad)
        return [b"must not be sent"]
    if path == "/header-latin1":
        start_response("200 OK", TEXT + [("X-Latin", "caf\xe9")])
        return [b"latin1"]
    if path == "/write":
        write = start_response("200 OK", TEXT)
        write(b"from write; ")
        return [b"from iterable"]
    if path == "/twice":
        start_response("200 OK", TEXT)
        start_response("200 OK", TEXT)
        return [b"must not be sent"]
    if path == "/exc-replace":
        start_response("200 OK", TEXT + [("X-Original", "yes")])
        try:
            raise RuntimeError("handled by the app")
        except RuntimeError:
            start_response("503 Replaced", TEXT + [("X-Replaced", "yes")], sys.exc_info())
        return [b"replaced"]
    if path == "/exc-after-head":
        return _exc_after_head(start_response)
    if path == "/conn-close":
        start_response("200 OK", TEXT + [("Content-Length", "3"), ("Connection", "close")])
        return [b"bye"]
    if path == "/stream":
        start_response("200 OK", TEXT)
        return _stream()
    if path == "/stream-sleep":
        start_response("200 OK", TEXT)
        return _stream_sleep()
    if path == "/errors":
        _errors(environ)
    start_response("200 OK", TEXT + [("Content-Length", "2")])
    return [b"ok"]
