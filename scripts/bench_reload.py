#!/usr/bin/env python3
"""Supervision benchmark behind scripts/bench-reload: rwsgi versus Gunicorn and uWSGI.

Each server runs 2 worker processes on 127.0.0.1 with the hello app
(etc/apps/hello.py) and is driven by the same load: 16 connections from two
Python client processes, 8 keep-alive and 8 connection-per-request. Clients
behave like real HTTP clients: a `Connection: close` response, or a keep-alive
connection the server closed while it was idle (checked before reuse, as
urllib3 does), makes them reconnect. Nothing is retried; every failed request
is counted.

Figures, per server:
  HUP failed     requests that failed in an 8 s run with a HUP reload at 3 s
  starved        connections that completed no request in the second before the HUP
  p99 steady     p99 latency of requests started before the HUP
  p99 HUP        p99 latency of requests started between the HUP and 0.5 s after
                 the last old worker left (extra p99 = the difference)
  HUP->new       from the HUP until no old worker is left and 2 workers run
                 (process list; a new worker may still be importing the app)
  KILL->new      from SIGKILL of a worker until a replacement process exists
  KILL failed    requests that failed in a 4 s run with that SIGKILL
  ratio          throughput with --max-requests 100 / throughput without
                 (wrk -c16 keep-alive if installed, else the clients above; best
                 of 2 interleaved runs each)
  TERM->exit     from SIGTERM, with one 2-second request in flight, until the
                 master exits; and what became of that request

It prints numbers; it is not a test. Run it through scripts/bench-reload,
which installs the peers and builds rwsgi.
"""

import argparse
import multiprocessing
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
VENV = WORK / "venv"
LOGS = WORK / "reload-logs"
HOST = "127.0.0.1"
APPS = ROOT / "etc/apps"

OK, REFUSED, RESET, EOF, TIMEOUT, STATUS, OTHER = range(7)
KIND_NAMES = ["ok", "refused", "reset", "eof", "timeout", "status", "other"]


def log(msg):
    print(f"[bench-reload] {msg}", file=sys.stderr, flush=True)


# --- processes ---------------------------------------------------------------

def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """One server run: its own process group, its output in a log file."""

    def __init__(self, name, kind, argv, port, logfile):
        self.name, self.kind, self.port, self.logfile = name, kind, port, logfile
        self.argv = [str(a) for a in argv]
        with open(logfile, "wb") as out:
            out.write(f"$ {' '.join(self.argv)}\n".encode())
            out.flush()
            self.p = subprocess.Popen(self.argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def workers(self):
        return children(self.pid)

    def log_text(self):
        return Path(self.logfile).read_text(errors="replace")

    def wait_ready(self, timeout=30.0):
        """Until it answers GET / with 200 and runs 2 workers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited: {self.log_text()[-500:]}")
            if len(self.workers()) == 2 and get_status(self.port, "/") == 200:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready within {timeout} s: {self.log_text()[-500:]}")

    def stop(self):
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            if not self.alive():
                break
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
        try:  # workers that outlived the master, still in the group
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def server_argv(kind, port, app, opts, extra):
    addr = f"{HOST}:{port}"
    bindir = VENV / "bin"
    if kind == "rwsgi":
        return [opts.rwsgi_bin, "--http", addr, "--wsgi-file", APPS / f"{app}.py",
                "--processes", "2", "--disable-logging", *extra]
    if kind == "gunicorn":
        return [bindir / "gunicorn", "-w", "2", "-k", "sync", "-b", addr, "--pythonpath", APPS,
                "--log-level", "warning", *extra, f"{app}:application"]
    if kind in ("uwsgi", "uwsgi-http11"):
        # --http-socket closes every connection after the response, without
        # saying so: --add-header tells clients. --http11-socket keeps
        # connections alive (when the response has a Content-Length), but a
        # sync worker then stays with one connection while it keeps sending.
        if kind == "uwsgi-http11":
            bind = ["--http11-socket", addr]
        else:
            bind = ["--http-socket", addr, "--add-header", "Connection: close"]
        return [bindir / "uwsgi", *bind, "--wsgi-file", APPS / f"{app}.py",
                "--master", "--processes", "2", "--disable-logging", "--die-on-term",
                "--need-app", *extra]
    raise ValueError(kind)


def start(kind, run, opts, app="hello", extra=()):
    port = free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    server = Server(kind, kind, server_argv(kind, port, app, opts, list(extra)), port,
                    LOGS / f"{kind}-{run}.log")
    try:
        server.wait_ready()
    except Exception:
        server.stop()
        raise
    return server


# --- HTTP --------------------------------------------------------------------

def read_response(sock, buf):
    """(status, close, rest of buffer) of one response with a Content-Length."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise EOFError("no response" if not buf else "EOF in head")
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    close = parts[0] == "HTTP/1.0"
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            close = value == "close"
    if length is None:  # read to close
        while True:
            data = sock.recv(65536)
            if not data:
                return status, True, b""
            buf += data
    while len(buf) < length:
        data = sock.recv(65536)
        if not data:
            raise EOFError("EOF in body")
        buf += data
    return status, close, buf[length:]


def get_status(port, path, timeout=2.0):
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return read_response(s, b"")[0]
    except (OSError, EOFError, ValueError, IndexError):
        return None


def dropped(sock):
    """Has the server closed this idle connection? (urllib3 checks this before reuse.)"""
    p = select.poll()
    p.register(sock, select.POLLIN)
    return bool(p.poll(0))


def client_thread(cid, keepalive, port, stop_at, out):
    req = b"GET / HTTP/1.1\r\nHost: localhost\r\n" + (b"" if keepalive else b"Connection: close\r\n") + b"\r\n"
    sock, buf = None, b""
    while time.monotonic() < stop_at:
        t0 = time.monotonic()
        kind = OK
        try:
            if sock is not None and not buf and dropped(sock):
                sock.close()  # the server closed it while idle: reconnect, like urllib3
                sock = None
            if sock is None:
                sock = socket.create_connection((HOST, port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buf = b""
            sock.sendall(req)
            status, close, buf = read_response(sock, buf)
            if status != 200:
                kind = STATUS
            if close or not keepalive or kind != OK:
                sock.close()
                sock = None
        except ConnectionRefusedError:
            kind = REFUSED
        except (ConnectionResetError, BrokenPipeError):
            kind = RESET
        except EOFError:
            kind = EOF
        except socket.timeout:
            kind = TIMEOUT
        except (OSError, ValueError, IndexError):
            kind = OTHER
        if kind not in (OK, STATUS) and sock is not None:
            sock.close()
            sock = None
        out.append((t0, time.monotonic(), kind, cid))
    if sock is not None:
        sock.close()


def client_process(clients, port, stop_at, queue):
    results, threads = [], []
    for cid, keepalive in clients:
        t = threading.Thread(target=client_thread, args=(cid, keepalive, port, stop_at, results))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    queue.put(results)


class Load:
    """16 connections (8 keep-alive, 8 per-request) from 2 client processes."""

    def __init__(self, port, seconds, keepalive=8, per_request=8, procs=2):
        self.start_at = time.monotonic()
        self.stop_at = self.start_at + seconds
        self.clients = keepalive + per_request
        modes = list(enumerate([True] * keepalive + [False] * per_request))
        ctx = multiprocessing.get_context("fork")
        self.queue = ctx.Queue()
        self.procs = [ctx.Process(target=client_process,
                                  args=(modes[i::procs], port, self.stop_at, self.queue))
                      for i in range(procs)]
        for p in self.procs:
            p.start()

    def results(self):
        out = []
        for _ in self.procs:
            out.extend(self.queue.get(timeout=60))
        for p in self.procs:
            p.join(timeout=10)
        out.sort()
        return out


def p99(latencies):
    if not latencies:
        return float("nan")
    s = sorted(latencies)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


def failures(results):
    counts = {}
    for _, _, kind, _ in results:
        if kind != OK:
            counts[KIND_NAMES[kind]] = counts.get(KIND_NAMES[kind], 0) + 1
    return counts


def wait_replaced(server, old, timeout):
    """Seconds until none of `old` is a child any more and 2 workers run."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        kids = server.workers()
        if len(kids) == 2 and not set(kids) & set(old):
            return time.monotonic() - t0
        time.sleep(0.005)
    return None


# --- scenarios ---------------------------------------------------------------

def run_hup(kind, opts, row):
    server = start(kind, "hup", opts)
    try:
        load = Load(server.port, opts.hup_seconds)
        time.sleep(opts.hup_at)
        old = server.workers()
        hup_at = time.monotonic()
        os.kill(server.pid, signal.SIGHUP)
        replaced = wait_replaced(server, old, opts.hup_seconds - opts.hup_at)
        res = load.results()
        row["hup_total"] = len(res)
        row["hup_fail"] = sum(1 for r in res if r[2] != OK)
        row["hup_fail_kinds"] = failures(res)
        row["hup_new_s"] = replaced
        steady = [e - s for s, e, k, _ in res if k == OK and load.start_at + 1.0 <= s < hup_at]
        window_end = hup_at + (replaced if replaced is not None else opts.hup_seconds) + 0.5
        around = [e - s for s, e, k, _ in res if k == OK and hup_at <= s < window_end]
        row["p99_steady_ms"] = p99(steady) * 1000
        row["p99_hup_ms"] = p99(around) * 1000
        row["max_hup_ms"] = max(around, default=float("nan")) * 1000
        # Connections that completed nothing in a steady second before the HUP.
        served = {c for s, e, k, c in res if k == OK and hup_at - 1.0 <= e < hup_at}
        row["starved"] = load.clients - len(served)
    finally:
        server.stop()


def run_kill(kind, opts, row):
    server = start(kind, "kill", opts)
    try:
        load = Load(server.port, opts.kill_seconds)
        time.sleep(opts.kill_at)
        victim = server.workers()[0]
        os.kill(victim, signal.SIGKILL)
        replaced = wait_replaced(server, [victim], opts.kill_seconds - opts.kill_at)
        res = load.results()
        row["kill_new_ms"] = None if replaced is None else replaced * 1000
        row["kill_fail"] = sum(1 for r in res if r[2] != OK)
        row["kill_total"] = len(res)
    finally:
        server.stop()


def wrk_throughput(port, seconds):
    """(req/s, failed requests) from wrk: 1 thread, 16 keep-alive connections."""
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds:g}s", "--latency",
                          f"http://{HOST}:{port}/"], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    rps, fail = float("nan"), 0
    for line in out.splitlines():
        words = line.replace(",", " ").split()
        if line.startswith("Requests/sec:"):
            rps = float(words[1])
        elif line.strip().startswith("Socket errors:"):
            fail += sum(int(w) for w in words if w.isdigit())
        elif line.strip().startswith("Non-2xx"):
            fail += int(words[-1])
    return rps, fail


def throughput(kind, opts, extra, run):
    server = start(kind, run, opts, extra=extra)
    try:
        if opts.wrk:
            return wrk_throughput(server.port, opts.tput_seconds)
        load = Load(server.port, opts.tput_seconds + 1.0)
        res = load.results()
        t0 = load.start_at + 1.0  # after a second of warm-up
        ok = sum(1 for s, e, k, _ in res if k == OK and e >= t0)
        fail = sum(1 for r in res if r[2] != OK)
        return ok / (load.stop_at - t0), fail
    finally:
        server.stop()


def run_maxreq(kind, opts, row, extra_recycle=(), plain=None):
    """Best of `--tput-rounds` runs each, interleaved (the machine is shared)."""
    plains, recycled, fails = [], [], 0
    for _ in range(opts.tput_rounds):
        if plain is None:
            rps, fail = throughput(kind, opts, (), "plain")
            plains.append(rps)
            fails += fail
        rps, fail = throughput(kind, opts, ("--max-requests", "100", *extra_recycle), "maxreq")
        recycled.append(rps)
        fails += fail
    plain = plain if plain is not None else max(plains)
    row["rps_plain"] = plain
    row["rps_maxreq"] = max(recycled)
    row["maxreq_ratio"] = max(recycled) / plain if plain else float("nan")
    row["maxreq_fail"] = fails


def run_term(kind, opts, row):
    server = start(kind, "term", opts, app="sup_app")
    try:
        sock = socket.create_connection((HOST, server.port), timeout=15)
        sock.sendall(b"GET /sleep?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while "sleep-begin" not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        result = {}

        def read():
            try:
                result["status"] = read_response(sock, b"")[0]
            except (OSError, EOFError, ValueError) as e:
                result["error"] = type(e).__name__

        reader = threading.Thread(target=read)
        reader.start()
        try:
            server.p.wait(timeout=opts.term_timeout)
            row["term_exit_s"] = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            row["term_exit_s"] = None
        reader.join(timeout=5)
        row["term_slow"] = str(result.get("status", result.get("error", "none")))
        row["term_code"] = server.p.returncode
        sock.close()
    finally:
        server.stop()


# --- report --------------------------------------------------------------------

def fmt(v, spec):
    if v is None:
        return "n/a"
    if isinstance(v, float) and v != v:
        return "n/a"
    return spec.format(v)


def print_table(rows, cols):
    table = [[h for _, h, _ in cols]]
    for r in rows:
        if any(r.get(k) is not None for k, _, _ in cols[1:]):
            table.append([fmt(r.get(k), spec) for k, _, spec in cols])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for i, row in enumerate(table):
        print("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def report(rows, opts):
    for r in rows:
        if r.get("p99_hup_ms") is not None and r.get("p99_steady_ms") is not None:
            r["p99_extra_ms"] = r["p99_hup_ms"] - r["p99_steady_ms"]
        if r.get("hup_total") is not None:
            r["hup_fail_of"] = f"{r['hup_fail']}/{r['hup_total']}"
        if r.get("kill_total") is not None:
            r["kill_fail_of"] = f"{r['kill_fail']}/{r['kill_total']}"
    print()
    print(f"Supervision benchmark: 2 workers, hello app, 8 keep-alive + 8 per-request client "
          f"connections; {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')}")
    print()
    print_table(rows, [
        ("server", "server", "{}"),
        ("hup_fail_of", "HUP failed/reqs", "{}"),
        ("starved", "starved/16", "{}"),
        ("p99_steady_ms", "p99 steady ms", "{:.1f}"),
        ("p99_hup_ms", "p99 HUP ms", "{:.1f}"),
        ("p99_extra_ms", "extra p99 ms", "{:+.1f}"),
        ("max_hup_ms", "max HUP ms", "{:.0f}"),
        ("hup_new_s", "HUP->new s", "{:.2f}"),
        ("kill_new_ms", "KILL->new ms", "{:.1f}"),
        ("kill_fail_of", "KILL failed/reqs", "{}"),
    ])
    print()
    print_table(rows, [
        ("server", "server", "{}"),
        ("rps_plain", "req/s", "{:.0f}"),
        ("rps_maxreq", "req/s max-req 100", "{:.0f}"),
        ("maxreq_ratio", "ratio", "{:.2f}"),
        ("maxreq_fail", "failed", "{}"),
        ("term_exit_s", "TERM->exit s", "{:.2f}"),
        ("term_slow", "2 s request", "{}"),
    ])
    print()
    for r in rows:
        notes = []
        if r.get("hup_fail_kinds"):
            notes.append(f"HUP failures by kind {r['hup_fail_kinds']}")
        if r.get("starved"):
            notes.append(f"{r['starved']} of 16 connections got no response in the second before "
                         "the HUP (workers pinned by other connections): its latencies and "
                         "throughput are those of the lucky connections")
        if r.get("term_code") not in (None, 0):
            notes.append(f"exit code after TERM {r['term_code']}")
        if r.get("error"):
            notes.append(f"error: {r['error']}")
        if notes:
            print(f"  {r['server']}: " + "; ".join(notes))
    print("  starved/16: connections that completed no request in the second before the HUP.")
    print("  p99 HUP: requests started from the HUP until 0.5 s after the last old worker left.")
    print("  HUP->new, KILL->new: from the process list (a new worker may still be importing "
          "the app).")
    print("  TERM->exit: the 2 s request is sent ~0.1 s before TERM; a server that lets it "
          "finish exits after ~2 s.")
    how = ("wrk -t1 -c16 (keep-alive)" if opts.wrk
           else "the Python clients, after 1 s of warm-up")
    print(f"  req/s: best of {opts.tput_rounds} interleaved {opts.tput_seconds:.0f} s runs of "
          f"{how}; failed: in all of them.")
    print("  uWSGI runs with --die-on-term (TERM shuts down; without it TERM reloads).")
    print(f"  Server logs: {LOGS}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="rwsgi,gunicorn,uwsgi",
                    help="comma-separated: rwsgi, gunicorn, uwsgi (uwsgi adds an --http11-socket HUP row)")
    ap.add_argument("--rwsgi-bin", default=os.environ.get("RWSGI_BIN", str(ROOT / "target/release/rwsgi")))
    ap.add_argument("--hup-seconds", type=float, default=8.0)
    ap.add_argument("--hup-at", type=float, default=3.0)
    ap.add_argument("--kill-seconds", type=float, default=4.0)
    ap.add_argument("--kill-at", type=float, default=1.5)
    ap.add_argument("--tput-seconds", type=float, default=4.0)
    ap.add_argument("--tput-rounds", type=int, default=2)
    ap.add_argument("--no-wrk", dest="wrk", action="store_false",
                    help="measure throughput with the Python clients even if wrk is installed")
    ap.add_argument("--term-timeout", type=float, default=15.0)
    opts = ap.parse_args()
    if opts.wrk and not shutil.which("wrk"):
        log("wrk not found: throughput from the Python clients (which then bound it)")
        opts.wrk = False
    rows = []
    started = time.monotonic()
    for kind in opts.servers.split(","):
        # (label, server kind, what to run, extra recycling flags)
        variants = [(kind, kind, "all", ())]
        if kind == "rwsgi":
            variants.append(("rwsgi --min-worker-lifetime 0", "rwsgi", "maxreq",
                             ("--min-worker-lifetime", "0")))
        if kind == "uwsgi":
            variants.append(("uwsgi --http11-socket", "uwsgi-http11", "hup", ()))
        for label, k, what, recycle in variants:
            row = {"server": label}
            rows.append(row)
            log(f"{label} ...")
            try:
                if what in ("all", "hup"):
                    run_hup(k, opts, row)
                if what == "all":
                    run_kill(k, opts, row)
                if what in ("all", "maxreq"):
                    plain = rows[-2].get("rps_plain") if what == "maxreq" else None
                    run_maxreq(k, opts, row, recycle, plain)
                if what == "all":
                    run_term(k, opts, row)
            except Exception as e:  # a server that cannot run still gets a row
                row["error"] = f"{type(e).__name__}: {e}"
                log(f"{label}: {row['error']}")
    report(rows, opts)
    log(f"done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
