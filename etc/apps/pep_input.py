"""Test app for wsgi.input (PEP 3333): each route reads the request body in
its own way and shows the client what each call returned.

Routes (PATH_INFO):
  /ops        a fixed sequence of read(n), readline(), readline(limit),
              readlines(hint), iteration, then reads at EOF; one line per call:
              CALL<TAB>ascii(result)
  /readlines  ascii(readlines())
  /iter       ascii(list(wsgi.input))
  /read-all   ascii(read())
  /echo       the body echoed back (readline() once, then read(65536) until EOF),
              with X-Eof: ascii of read(), read(10), readline() after the end
"""


def _ops(inp, environ):
    out = [("input_terminated", environ.get("wsgi.input_terminated"))]
    out.append(("read(3)", inp.read(3)))
    out.append(("readline()", inp.readline()))
    out.append(("readline(5)", inp.readline(5)))
    out.append(("readline(-1)", inp.readline(-1)))
    out.append(("readlines(3)", inp.readlines(3)))
    out.append(("read(0)", inp.read(0)))
    out.append(("iter", [line for line in inp]))
    out.append(("eof read()", inp.read()))
    out.append(("eof read(10)", inp.read(10)))
    out.append(("eof readline()", inp.readline()))
    out.append(("eof readlines()", inp.readlines()))
    return "".join("%s\t%s\n" % (k, ascii(v)) for k, v in out).encode("ascii")


def _echo(inp):
    parts = [inp.readline()]
    while True:
        data = inp.read(65536)
        if not data:
            break
        parts.append(data)
    eof = ascii((inp.read(), inp.read(10), inp.readline()))
    return b"".join(parts), eof


def application(environ, start_response):
    path = environ["PATH_INFO"]
    inp = environ["wsgi.input"]
    headers = [("Content-Type", "application/octet-stream")]
    if path == "/ops":
        body = _ops(inp, environ)
    elif path == "/readlines":
        body = ascii(inp.readlines()).encode("ascii")
    elif path == "/iter":
        body = ascii(list(inp)).encode("ascii")
    elif path == "/read-all":
        body = ascii(inp.read()).encode("ascii")
    elif path == "/echo":
        body, eof = _echo(inp)
        headers.append(("X-Eof", eof))
    else:
        body = b"unknown route"
    headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]
