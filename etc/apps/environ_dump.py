"""Test app that shows the request to the client.

Routes (PATH_INFO):
  /echo    200, the request body (wsgi.input.read() to the end) echoed back
  /sleep   writes "sleep-begin" to wsgi.errors, sleeps ?ms=N milliseconds, 200 "slept"
  anything else: 200, one line per environ entry: KEY<TAB>ascii(value), sorted.
    Values that are not str/bool/int/tuple are shown as their type name. The
    request body (read fully from wsgi.input) is the extra entry "BODY".
"""

import time


def _plain(value):
    if isinstance(value, (str, bool, int, tuple)):
        return ascii(value)
    return "<" + type(value).__name__ + ">"


def application(environ, start_response):
    if environ["PATH_INFO"] == "/echo":
        body = environ["wsgi.input"].read()
    elif environ["PATH_INFO"] == "/sleep":
        ms = int(environ.get("QUERY_STRING", "").partition("ms=")[2] or "1000")
        environ["wsgi.errors"].write("sleep-begin\n")
        environ["wsgi.errors"].flush()
        time.sleep(ms / 1000)
        body = b"slept"
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        lines = ["%s\t%s" % (k, _plain(v)) for k, v in sorted(environ.items())]
        lines.append("BODY\t" + ascii(environ["wsgi.input"].read(length)))
        body = ("\n".join(lines) + "\n").encode("ascii")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
