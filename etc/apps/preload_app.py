"""Test app for --preload (tests/integration/preload.rs).

At import it builds DATA, about 30 MiB of small lists (objects the garbage
collector tracks), so a worker's shared memory shows whether it was forked
from the template; it registers a post-fork hook with @rwsgi.postfork, and
`hook` is there for --post-fork preload_app:hook. Routes (PATH_INFO):
  /state  200, one key=value a line: pid, ppid, the hooks that ran in this process (with the
          pid they ran in), whether rwsgi.preload is set, a random number,
          the current directory and the number of DATA items
  /gc     runs gc.collect() (which would write to every tracked object that
          is not frozen), then 200 "collected"
  anything else: 200 "ok"
Environment: PRELOAD_THREAD=1 starts a thread named "poller" at import;
PRELOAD_CONNECT=PORT connects to 127.0.0.1:PORT at import and keeps it open.
"""

import gc
import os
import random
import socket
import threading
import time

import rwsgi

DATA = [[i] for i in range(300_000)]
RAN = []
IMPORTED_IN = os.getpid()


@rwsgi.postfork
def reopen():
    RAN.append(["decorator", os.getpid()])


def hook():
    RAN.append(["post-fork", os.getpid()])


if os.environ.get("PRELOAD_THREAD"):
    threading.Thread(target=lambda: time.sleep(3600), name="poller", daemon=True).start()

if os.environ.get("PRELOAD_CONNECT"):
    KEPT = socket.create_connection(("127.0.0.1", int(os.environ["PRELOAD_CONNECT"])))


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/state":
        state = {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "imported_in": IMPORTED_IN,
            "ran": ",".join("%s:%d" % (name, pid) for name, pid in RAN),
            "preload": rwsgi.preload,
            "random": random.random(),
            "cwd": os.getcwd(),
            "items": len(DATA),
        }
        body = "".join("%s=%s\n" % kv for kv in state.items()).encode()
    elif path == "/gc":
        gc.collect()
        body = b"collected"
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
