"""App for the PID 1 tests (tests/integration/container/pid1.rs).

Routes (PATH_INFO):
  /sleep    writes "sleep-begin" to wsgi.errors, sleeps ?ms=N milliseconds, 200 "slept"
  /orphan   double-forks: the intermediate child exits at once (the worker reaps
            it), so the grandchild is re-parented to the namespace's PID 1,
            rwsgi's master. The grandchild waits until the file ?release=PATH
            exists (at most 60 s), then exits with os._exit(0): only PID 1 can
            reap it. 200, body "<grandchild pid> <intermediate pid>" (pids as
            seen inside the namespace).
  /print    print()s ?marker=TEXT to stdout, 200 "printed"
  anything else: 200 "Hello, World!"
"""

import os
import time
from urllib.parse import parse_qs


def _orphan(release):
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        grandchild = os.fork()
        if grandchild == 0:
            # Hold no descriptor of the worker's (listeners, the client's
            # connection) while waiting; keep stdio.
            os.closerange(3, 65536)
            deadline = time.monotonic() + 60
            while not os.path.exists(release) and time.monotonic() < deadline:
                time.sleep(0.02)
            os._exit(0)
        os.write(w, str(grandchild).encode())
        os._exit(0)
    os.close(w)
    grandchild = int(os.read(r, 64) or b"0")
    os.close(r)
    os.waitpid(child, 0)
    return "%d %d" % (grandchild, child)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/sleep":
        environ["wsgi.errors"].write("sleep-begin\n")
        environ["wsgi.errors"].flush()
        time.sleep(int(query.get("ms", "1000")) / 1000)
        body = b"slept"
    elif path == "/orphan":
        body = _orphan(query["release"]).encode()
    elif path == "/print":
        print(query.get("marker", "marker"))
        body = b"printed"
    else:
        body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
