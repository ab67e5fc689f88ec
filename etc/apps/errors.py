"""Test app for error handling: exceptions before and during the response.

Routes (PATH_INFO):
  /raise              raises before start_response
  /raise-after-start  calls start_response, then raises before returning
  /gen-raise          streams one chunk (no Content-Length), then raises
  /gen-raise-length   promises Content-Length: 100, streams one chunk, raises
  anything else       200 "ok"
The exception messages carry the marker SECRET-MARKER so tests can check it
reaches the log but never the client.
"""


def _raise_mid_stream(start_response, headers):
    start_response("200 OK", headers)
    yield b"first chunk"
    raise RuntimeError("SECRET-MARKER raised mid-stream")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/raise":
        raise RuntimeError("SECRET-MARKER raised before start_response")
    if path == "/raise-after-start":
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise ValueError("SECRET-MARKER raised after start_response")
    if path == "/gen-raise":
        return _raise_mid_stream(start_response, [("Content-Type", "text/plain")])
    if path == "/gen-raise-length":
        headers = [("Content-Type", "text/plain"), ("Content-Length", "100")]
        return _raise_mid_stream(start_response, headers)
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
