"""Test app for the nginx (uwsgi_pass) and raw uwsgi-protocol tests.

Routes (PATH_INFO):
  /environ, /environ/...
             200 application/json: every str-valued environ entry (CGI vars,
             HTTP_* headers, wsgi.url_scheme) as one flat JSON object,
             plus "BODY_LENGTH": the length of the body read from wsgi.input
  /echo      200 application/octet-stream: the request body, echoed back
             (with Content-Length)
  /stream    200 from a generator, no Content-Length: 8 chunks, chunk i is
             "chunk i;" repeated 1000 times
  /sleep     writes "sleep-begin" to wsgi.errors, sleeps ?ms=N (default 30000)
             milliseconds, 200 "slept"
  /raise     raises before start_response (the server answers 500)
  anything else: 200 "ok"
"""

import json
import time


def _read_body(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length)


def _stream():
    for i in range(8):
        yield (("chunk %d;" % i) * 1000).encode("ascii")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/environ" or path.startswith("/environ/"):
        body = _read_body(environ)
        data = {k: v for k, v in environ.items() if isinstance(v, str)}
        data["BODY_LENGTH"] = str(len(body))
        out = json.dumps(data, sort_keys=True).encode("ascii")
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        return [out]
    if path == "/echo":
        body = _read_body(environ)
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    if path == "/sleep":
        ms = int(environ.get("QUERY_STRING", "").partition("ms=")[2] or "30000")
        environ["wsgi.errors"].write("sleep-begin\n")
        environ["wsgi.errors"].flush()
        time.sleep(ms / 1000)
        out = b"slept"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
        return [out]
    if path == "/raise":
        raise RuntimeError("nginx_app: raised on purpose")
    out = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]
