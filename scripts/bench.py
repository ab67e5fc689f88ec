#!/usr/bin/env python3
"""Benchmark driver behind scripts/bench: rwsgi versus uWSGI, Gunicorn, Granian, bjoern.
The static64k/static100m scenarios serve files from /static (see bench_static.py),
with nginx serving the same directory as the limit.

Every server runs 2 single-threaded worker processes on 127.0.0.1 with access
logging off. wrk (-t1 -c32) drives it directly over HTTP and through one nginx
(uwsgi_pass for rwsgi and uWSGI, proxy_pass with an upstream keep-alive pool for
the others). Servers are interleaved over rounds and medians are reported.
Run it through scripts/bench, which installs the peers and builds rwsgi.
"""

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import bench_static

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
VENV = WORK / "venv"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_SERVERS = ["rwsgi", "rwsgi-http", "uwsgi", "uwsgi-http", "gunicorn", "granian", "bjoern", "nginx"]
# uwsgi-http is uWSGI with --http-socket (it closes every connection); behind
# nginx it would be the same run as uwsgi (--socket), so it has no nginx rows.
# rwsgi-http is rwsgi behind nginx over HTTP (proxy_pass, keep-alive upstream
# pool) instead of uwsgi_pass; directly it would be the rwsgi run again.
UWSGI_PROTO_SERVERS = {"rwsgi", "uwsgi"}  # behind nginx these speak uwsgi, not HTTP
DEFAULT_SCENARIOS = ["hello-keepalive", "hello-close", "flask-keepalive", "flask-close",
                     "nginx-hello-keepalive", "nginx-flask-keepalive",
                     "static64k-keepalive", "static100m-keepalive"]
ALL_SCENARIOS = DEFAULT_SCENARIOS + ["nginx-hello-close", "nginx-flask-close"]
COLUMNS = [("rps", "req/s", "{:.0f}"), ("rps_spread", "±%", "{:.0f}"), ("p50_ms", "p50 ms", "{:.2f}"), ("p99_ms", "p99 ms", "{:.2f}"),
           ("errors", "errors", "{:.0f}"), ("cpu_us", "CPU µs/req", "{:.1f}"),
           ("pss_mib", "PSS MiB", "{:.1f}"), ("starved", "starved/32", "{:.0f}")]


@dataclass(frozen=True)
class App:
    name: str
    directory: Path
    module: str
    attr: str
    path: str          # URL path wrk requests
    use_file: bool     # rwsgi/uWSGI load it with --wsgi-file instead of --module

    @property
    def file(self):
        return self.directory / f"{self.module}.py"

    @property
    def target(self):
        return f"{self.module}:{self.attr}"


APPS = {
    "hello": App("hello", ROOT / "etc/apps", "hello", "application", "/", True),
    "flask": App("flask", ROOT / "scripts/bench-apps", "flask_app", "app", "/json", False),
    # The hello app with /static mapped (bench_static.py); wrk asks for a file.
    "static64k": App("static64k", ROOT / "etc/apps", "hello", "application", "/static/64k.bin", True),
    "static100m": App("static100m", ROOT / "etc/apps", "hello", "application", "/static/100m.bin", True),
}


@dataclass(frozen=True)
class Scenario:
    name: str
    app: str
    nginx: bool
    keepalive: bool


def parse_scenario(name):
    parts = name.split("-")
    nginx = parts[0] == "nginx"
    parts = parts[1:] if nginx else parts
    if len(parts) != 2 or parts[0] not in APPS or parts[1] not in ("keepalive", "close"):
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(ALL_SCENARIOS)}")
    return Scenario(name, parts[0], nginx, parts[1] == "keepalive")


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --- processes ------------------------------------------------------------------

def proc_tree(root):
    """{pid: stat fields after the comm} for root and all its descendants."""
    stats, kids = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        stats[int(d)] = fields
        kids.setdefault(int(fields[1]), []).append(int(d))
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            tree[pid] = stats[pid]
            todo.extend(kids.get(pid, []))
    return tree


def cpu_ticks(root):
    return sum(int(f[11]) + int(f[12]) for f in proc_tree(root).values())  # utime + stime


def pss_mib(root):
    total_kb = 0
    for pid in proc_tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total_kb += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            pass
    return total_kb / 1024


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Proc:
    """A child in its own process group, logging to a file, killed as a group."""
    live = []

    def __init__(self, argv, logfile, cwd=ROOT):
        self.argv = [str(a) for a in argv]
        self.logfile = logfile
        with open(logfile, "ab") as out:
            out.write(f"\n$ {' '.join(self.argv)}\n".encode())
            out.flush()
            self.p = subprocess.Popen(self.argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.p.pid
        Proc.live.append(self)

    def alive(self):
        return self.p.poll() is None

    def tail(self, n=3):
        """The last lines this start logged, error lines first."""
        try:
            text = Path(self.logfile).read_text(errors="replace")
        except OSError:
            return ""
        lines = [x.strip() for x in text[text.rfind("\n$ "):].splitlines()[2:] if x.strip()]
        errors = [x for x in lines if "error" in x.lower()]
        return " | ".join((errors or lines)[-n:])

    def stop(self):
        members = list(proc_tree(self.pid))
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and (self.alive() or any_alive(members)):
                time.sleep(0.05)
            if not self.alive() and not any_alive(members):
                break
        for pid in members:  # stragglers that left the process group
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self in Proc.live:
            Proc.live.remove(self)

    @classmethod
    def stop_all(cls):
        for proc in list(cls.live):
            proc.stop()


def any_alive(pids):
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return True
        except OSError:
            pass
    return False


def http_get(port, path, timeout=2.0):
    """(status, {lower-case header: value}) of one GET, or None."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def keeps_alive(port, path):
    """Does a second request on the same connection get answered?"""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        for _ in range(2):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            if resp.will_close:
                return False
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def honours_close(port, path):
    """Does the server end the connection after answering a `Connection: close` request?"""
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            s.settimeout(1.0)
            while s.recv(65536):
                pass
            return True
    except OSError:  # includes the timeout: still open after 1 s
        return False


def tcp_open(port):
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_ready(proc, check, deadline_s=30.0):
    """Poll check() until it is truthy; None if proc dies or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not proc.alive():
            return None
        result = check()
        if result:
            return result
        time.sleep(0.05)
    return None


# --- servers --------------------------------------------------------------------

BJOERN_LAUNCHER = '''\
"""Generated by scripts/bench.py: bjoern on one socket, served by N forked workers."""
import importlib, os, sys
import bjoern

host, port, app_dir, target, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
sys.path.insert(0, app_dir)
module, attr = target.split(":")
app = getattr(importlib.import_module(module), attr)
bjoern.listen(app, host, port)
children = []
for _ in range(workers):
    pid = os.fork()
    if pid == 0:
        try:
            bjoern.run()
        finally:
            os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
'''


def server_argv(server, app, proto, port, opts):
    """Command line for server serving app on port, speaking proto ('http' or 'uwsgi')."""
    if bench_static.is_static(app):
        plain = server_argv(server, APPS["hello"], proto, port, opts) if server != "nginx" else []
        return bench_static.server_argv(server, app, port, plain, HOST)
    addr, bindir = f"{HOST}:{port}", VENV / "bin"
    by_module = ["--module", app.target, "--pythonpath", app.directory, "--home", VENV]
    if server in ("rwsgi", "rwsgi-http"):
        bind = ["--socket" if proto == "uwsgi" else "--http", addr]
        load = ["--wsgi-file", app.file] if app.use_file else by_module
        return [opts.rwsgi_bin, *bind, *load, "--processes", "2", "--disable-logging"]
    if server in ("uwsgi", "uwsgi-http"):
        # --http-socket closes every connection in uWSGI 2.0; --http11-socket keeps
        # them alive when the response has a Content-Length (see start_server).
        if proto == "uwsgi":
            flag = "--socket"
        elif server == "uwsgi-http":
            flag = "--http-socket"
        else:
            flag = opts.uwsgi_http_flag.get(app.name, "--http11-socket")
        load = ["--wsgi-file", app.file] if app.use_file else by_module
        return [bindir / "uwsgi", flag, addr, *load, "--processes", "2", "--master",
                "--disable-logging", "--die-on-term", "--need-app"]
    if server == "gunicorn":
        return [bindir / "gunicorn", "-w", "2", "-k", "sync", "-b", addr, "--pythonpath",
                app.directory, "--log-level", "warning", app.target]
    if server == "granian":
        return [bindir / "granian", "--interface", "wsgi", "--workers", "2", "--blocking-threads", "1",
                "--runtime-threads", "1", "--no-access-log", "--log-level", "warning", "--host", HOST,
                "--port", port, "--working-dir", app.directory, app.target]
    if server == "bjoern":
        launcher = WORK / "bjoern_launcher.py"
        launcher.write_text(BJOERN_LAUNCHER)
        return [bindir / "python", launcher, HOST, port, app.directory, app.target, 2]
    raise ValueError(server)


class StartError(Exception):
    pass


def start_server(server, app, proto, opts):
    """Start a server on a free port; retry a few times if the port was taken."""
    logfile = WORK / "logs" / f"{server}-{app.name}-{proto}.log"
    for _ in range(3):
        port = free_port()
        proc = Proc(server_argv(server, app, proto, port, opts), logfile)
        if proto == "uwsgi":
            ok = wait_ready(proc, lambda: tcp_open(port))
        else:
            ok = wait_ready(proc, lambda: http_get(port, app.path))
        if ok:
            if server == "uwsgi" and proto == "http" and app.name not in opts.uwsgi_http_flag:
                headers = ok[1]
                if "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", ""):
                    # http11-socket would hold such responses open until its 4 s socket
                    # timeout; fall back to --http-socket, which closes every connection.
                    note = (f"uwsgi: the {app.name} app sends no Content-Length, so --http-socket "
                            "(which closes every connection) instead of --http11-socket")
                    log(note)
                    opts.notes.append(note)
                    proc.stop()
                    opts.uwsgi_http_flag[app.name] = "--http-socket"
                    continue
                opts.uwsgi_http_flag[app.name] = "--http11-socket"
            return proc, port
        reason = proc.tail()
        proc.stop()
        if "in use" not in reason.lower():
            raise StartError(reason or "exited before it was ready")
    raise StartError("could not bind a free port")


NGINX_CONF = '''\
daemon off;
master_process on;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream backend {{
        server {host}:{backend};
        {keepalive}
    }}
    server {{
        listen {host}:{port};
        location / {{
{location}
        }}
    }}
}}
'''
UWSGI_LOCATION = '''\
            uwsgi_pass backend;
            uwsgi_param QUERY_STRING $query_string;
            uwsgi_param REQUEST_METHOD $request_method;
            uwsgi_param CONTENT_TYPE $content_type;
            uwsgi_param CONTENT_LENGTH $content_length;
            uwsgi_param REQUEST_URI $request_uri;
            uwsgi_param PATH_INFO $document_uri;
            uwsgi_param DOCUMENT_ROOT $document_root;
            uwsgi_param SERVER_PROTOCOL $server_protocol;
            uwsgi_param REQUEST_SCHEME $scheme;
            uwsgi_param REMOTE_ADDR $remote_addr;
            uwsgi_param REMOTE_PORT $remote_port;
            uwsgi_param SERVER_PORT $server_port;
            uwsgi_param SERVER_NAME $server_name;'''  # as Debian's /etc/nginx/uwsgi_params
PROXY_LOCATION = '''\
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;'''


def start_nginx(backend_port, uwsgi_proto, app):
    d = WORK / "nginx"
    d.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        port = free_port()
        conf = NGINX_CONF.format(d=d, host=HOST, backend=backend_port, port=port,
                                 keepalive="" if uwsgi_proto else "keepalive 32;",
                                 location=UWSGI_LOCATION if uwsgi_proto else PROXY_LOCATION)
        (d / "nginx.conf").write_text(conf)
        proc = Proc(["nginx", "-p", d, "-c", d / "nginx.conf"], WORK / "logs" / "nginx.log")
        # 502/504: nginx is up but cannot reach the backend yet
        if wait_ready(proc, lambda: 0 < (http_get(port, app.path) or (0,))[0] < 502, 15.0):
            return proc, port
        reason = proc.tail()
        proc.stop()
        if "in use" not in reason.lower():
            raise StartError(f"nginx: {reason or 'not ready'}")
    raise StartError("nginx: could not bind a free port")


# --- load -----------------------------------------------------------------------

WRK_LUA = '''\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d," ..
    "\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
'''


def run_wrk(port, path, seconds, keepalive, connections, extra=()):
    script = WORK / "report.lua"
    script.write_text(WRK_LUA)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), *extra]
    if not keepalive:
        argv += ["-H", "Connection: close"]
    argv.append(f"http://{HOST}:{port}{path}")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    for line in out.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON "):])
    raise RuntimeError(f"wrk printed no summary: {out.strip()[-300:]}")


def keepalive_probe(port, path, connections, seconds):
    """Open all connections, then loop requests on each; count those never answered."""
    conns = [http.client.HTTPConnection(HOST, port, timeout=seconds) for _ in range(connections)]
    for c in conns:
        try:
            c.connect()
        except OSError:
            c.close()  # its thread tries again
    answered = [0] * connections
    start = threading.Barrier(connections + 1)
    deadline = [0.0]

    def loop(i):
        c = conns[i]
        start.wait()
        while (left := deadline[0] - time.monotonic()) > 0:
            try:
                if c.sock is None:
                    c.connect()
                c.sock.settimeout(left)
                c.request("GET", path)
                c.getresponse().read()
                answered[i] += 1
            except (socket.timeout, TimeoutError):
                break
            except (OSError, http.client.HTTPException):
                c.close()  # closed by the server: reconnect and go on
        c.close()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + seconds
    start.wait()
    for t in threads:
        t.join(seconds + 10)
    return sum(1 for n in answered if n == 0)


# --- one server start: warm-up, then every scenario that can share it ------------

def run_group(server, app, proto, scenarios, opts, round_no):
    records = []
    procs = []
    try:
        backend, port = start_server(server, app, proto, opts)
        procs.append(backend)
        nginx_port = None
        if any(s.nginx for s in scenarios):
            nginx, nginx_port = start_nginx(port, proto == "uwsgi", app)
            procs.append(nginx)
        targets = {nginx_port if s.nginx else port for s in scenarios}
        static = bench_static.is_static(app)
        conns = bench_static.connections(app, opts.connections) if static else opts.connections
        wrk_extra = bench_static.WRK_TIMEOUT if static else ()
        for t in targets if opts.warmup > 0 else ():
            run_wrk(t, app.path, opts.warmup, True, conns, wrk_extra)
        pss = pss_mib(backend.pid)
        for sc in scenarios:
            target = nginx_port if sc.nginx else port
            conn_ok = None  # does the server do what the scenario asks of the connection?
            if not sc.nginx:
                conn_ok = (keeps_alive if sc.keepalive else honours_close)(port, app.path)
            cpu0 = cpu_ticks(backend.pid)
            ngx0 = cpu_ticks(procs[1].pid) if sc.nginx else 0
            w = run_wrk(target, app.path, opts.duration, sc.keepalive, conns, wrk_extra)
            cpu = cpu_ticks(backend.pid) - cpu0
            ngx = (cpu_ticks(procs[1].pid) - ngx0) if sc.nginx else 0
            if not backend.alive():
                raise StartError(f"server died during the run: {backend.tail()}")
            n = w["requests"]
            rec = dict(server=server, scenario=sc.name, round=round_no, status="ok",
                       rps=n / (w["duration_us"] / 1e6), p50_ms=w["p50_us"] / 1000, p99_ms=w["p99_us"] / 1000,
                       errors=sum(w[k] for k in ("connect", "read", "write", "status", "timeout")),
                       cpu_us=(cpu * 1e6 / CLK_TCK / n) if n else None, pss_mib=pss,
                       nginx_cpu_us=(ngx * 1e6 / CLK_TCK / n) if (n and sc.nginx) else None,
                       starved=None, conn_ok=conn_ok, wrk=w)
            if sc.keepalive and not sc.nginx and not static:
                rec["starved"] = keepalive_probe(port, app.path, opts.connections, opts.probe_secs)
            log(f"  {server:9s} {sc.name:22s} {rec['rps']:9.0f} req/s  p99 {rec['p99_ms']:7.2f} ms  "
                f"err {rec['errors']:<6d} cpu {fmt(rec['cpu_us'], '{:.1f}')} µs/req  "
                f"starved {fmt(rec['starved'], '{:d}')}")
            records.append(rec)
    except (StartError, RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        reason = str(e).strip() or type(e).__name__
        log(f"  {server:9s} {app.name}/{proto}: n/a ({reason[:200]})")
        done = {r["scenario"] for r in records}
        records += [dict(server=server, scenario=s.name, round=round_no, status="n/a", reason=reason)
                    for s in scenarios if s.name not in done]
    finally:
        for p in reversed(procs):
            p.stop()
    return records


def applies(server, sc):
    """Whether server has a row in scenario sc (see ALL_SERVERS)."""
    if sc.app in bench_static.FILES or server == "nginx":
        return bench_static.applies(server, sc)
    if server == "uwsgi-http":
        return not sc.nginx
    if server == "rwsgi-http":
        return sc.nginx
    return True


def plan(servers, scenarios):
    """[(server, app, proto, [scenarios])]: one server start per entry."""
    groups = {}
    for app in APPS:
        for server in servers:
            for sc in scenarios:
                if sc.app != app or not applies(server, sc):
                    continue
                proto = "uwsgi" if sc.nginx and server in UWSGI_PROTO_SERVERS else "http"
                groups.setdefault((server, app, proto), []).append(sc)
    return [(srv, APPS[app], proto, scs) for (srv, app, proto), scs in groups.items()]


def run_all(opts, servers, scenarios, records):
    """Append every measurement to records (kept by the caller if interrupted)."""
    failed = {}
    groups = plan(servers, scenarios)
    for rnd in range(1, opts.rounds + 1):
        log(f"round {rnd}/{opts.rounds}")
        for server, app, proto, scs in groups:
            key = (server, app.name, proto)
            if key in failed:  # it will not start this round either
                records += [dict(server=server, scenario=s.name, round=rnd, status="n/a", reason=failed[key])
                            for s in scs]
                continue
            got = run_group(server, app, proto, scs, opts, rnd)
            if all(r["status"] == "n/a" for r in got):
                failed[key] = got[0]["reason"]
            records += got


# --- report ---------------------------------------------------------------------

def fmt(value, spec):
    return "-" if value is None else spec.format(value)


def summarise(records, servers, scenarios):
    summary = {}
    for sc in scenarios:
        for server in servers:
            if not applies(server, sc):
                summary.setdefault(sc.name, {})[server] = {"status": "skip"}
                continue
            runs = [r for r in records if r["server"] == server and r["scenario"] == sc.name]
            ok = [r for r in runs if r["status"] == "ok"]
            if not ok:
                reason = runs[0].get("reason", "not run") if runs else "not run"
                summary.setdefault(sc.name, {})[server] = {"status": "n/a", "reason": reason}
                continue
            med = {"status": "ok", "rounds": len(ok), "conn_ok": all(r["conn_ok"] is not False for r in ok)}
            for key in [c[0] for c in COLUMNS] + ["nginx_cpu_us"]:
                vals = [r[key] for r in ok if r.get(key) is not None]
                med[key] = statistics.median(vals) if vals else None
            rps = [r["rps"] for r in ok]  # (max - min) / median over the rounds
            med["rps_spread"] = 100 * (max(rps) - min(rps)) / med["rps"] if len(rps) > 1 and med["rps"] else None
            summary.setdefault(sc.name, {})[server] = med
    return summary


def table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(r, widths)))
             for r in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def describe(sc, opts):
    how = "keep-alive" if sc.keepalive else "Connection: close"
    via = "through nginx" if sc.nginx else "direct HTTP"
    return (f"## {sc.name}: {APPS[sc.app].path} on the {sc.app} app, {via}, {how}, "
            f"wrk -t1 -c{bench_static.connections(APPS[sc.app], opts.connections)} -d{opts.duration}s, "
            f"median of {opts.rounds} round(s)")


def report(summary, servers, scenarios, opts):
    out = []
    for sc in scenarios:
        cols = [c for c in COLUMNS if c[0] != "starved" or (sc.keepalive and not sc.nginx)]
        if sc.nginx:
            cols = cols + [("nginx_cpu_us", "nginx µs/req", "{:.1f}")]
        rows = []
        for server in servers:
            m = summary[sc.name][server]
            if m["status"] == "skip":
                continue
            if m["status"] != "ok":
                rows.append([server, "n/a"] + [""] * (len(cols) - 1))
                continue
            rows.append([server] + [fmt(m[k], spec) for k, _, spec in cols])
        header = ["server"] + [c[1].replace("/32", f"/{opts.connections}") for c in cols]
        out += [describe(sc, opts), "", table(header, rows), ""]
        for server in servers:
            if summary[sc.name][server]["status"] == "ok" and not summary[sc.name][server]["conn_ok"]:
                out.append(f"({server}: " + ("closes the connection after every response)" if sc.keepalive else
                           "ignores `Connection: close` and keeps the connection open, so wrk reuses it)"))
        out += [""] if out[-1] != "" else []
    peers = [s for s in servers if s != "rwsgi"]
    if "rwsgi" in servers and peers:
        for key, title in (("rps", "req/s ratio, rwsgi ÷ peer (>1: rwsgi serves more)"),
                           ("cpu_us", "CPU/request ratio, rwsgi ÷ peer (<1: rwsgi spends less)")):
            rows = []
            for sc in scenarios:
                mine = summary[sc.name]["rwsgi"]
                row = [sc.name]
                for p in peers:
                    theirs = summary[sc.name][p]
                    ok = mine["status"] == theirs["status"] == "ok" and mine[key] and theirs[key]
                    skip = theirs["status"] == "skip"
                    row.append(f"{mine[key] / theirs[key]:.2f}" if ok else "-" if skip else "n/a")
                rows.append(row)
            out += [f"## {title}", "", table(["scenario"] + peers, rows), ""]
    notes = sorted({f"{srv}: {m['reason']}" for sc in summary.values() for srv, m in sc.items()
                    if m["status"] not in ("ok", "skip")})
    if notes:
        out += ["## n/a reasons", ""] + [f"- {n[:300]}" for n in notes] + [""]
    out += bench_static.report_lines(summary, servers)
    if opts.notes:
        out += ["## notes", ""] + [f"- {n}" for n in opts.notes] + [""]
    return "\n".join(out)


def machine_info():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("uWSGI", "gunicorn", "granian", "bjoern", "Flask"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    for name, argv in (("nginx", ["nginx", "-v"]), ("wrk", ["wrk", "-v"])):
        r = subprocess.run(argv, capture_output=True, text=True)
        words = (r.stdout + r.stderr).replace("nginx version: nginx/", "").split()
        versions[name] = words[1] if name == "wrk" and len(words) > 1 else (words[0] if words else None)
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "nproc": os.cpu_count(), "cpu": model,
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg()[0], "versions": versions}


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default=",".join(ALL_SERVERS), help="comma list of %(default)s")
    ap.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                    help=f"comma list, or 'all' ({', '.join(ALL_SCENARIOS)}); default %(default)s")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported")
    ap.add_argument("--duration", type=int, default=5, help="seconds of wrk per figure")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of wrk after each server start")
    ap.add_argument("--probe-secs", type=float, default=3, help="length of the keep-alive starvation probe")
    ap.add_argument("--connections", type=int, default=32, help="wrk and probe connections")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    ap.add_argument("--rwsgi-bin", default=os.environ.get("RWSGI_BIN") or str(ROOT / "target/release/rwsgi"),
                    help="rwsgi binary (default $RWSGI_BIN, else target/release/rwsgi)")
    ap.add_argument("--hello-app", default=str(APPS["hello"].file), help="hello world WSGI file")
    ap.add_argument("--json", default=str(WORK / "results.json"), help="raw results (default %(default)s)")
    ap.add_argument("--setup-only", action="store_true", help="(scripts/bench) install and build only")
    opts = ap.parse_args()
    if opts.quick:
        opts.rounds, opts.duration, opts.warmup, opts.probe_secs = 1, 2, 1, 2
    opts.uwsgi_http_flag, opts.notes = {}, []
    hello = Path(opts.hello_app).resolve()
    APPS["hello"] = App("hello", hello.parent, hello.stem, "application", "/", True)
    servers = [s for s in opts.servers.split(",") if s]
    names = ALL_SCENARIOS if opts.scenarios == "all" else [s for s in opts.scenarios.split(",") if s]
    try:
        scenarios = [parse_scenario(n) for n in names]
    except ValueError as e:
        ap.error(str(e))
    if bad := [s for s in servers if s not in ALL_SERVERS]:
        ap.error(f"unknown server(s) {', '.join(bad)}; known: {', '.join(ALL_SERVERS)}")
    if not servers or not scenarios:
        ap.error("nothing to run")
    if not APPS["hello"].file.exists() and any(s.app == "hello" for s in scenarios):
        log(f"warning: {APPS['hello'].file} does not exist; hello scenarios will be n/a")

    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    if any(bench_static.is_static(APPS[s.app]) for s in scenarios):
        bench_static.prepare(os.environ)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    meta = machine_info()
    log(f"{meta['cpu']}, {meta['nproc']} CPUs, kernel {meta['kernel']}, load {meta['loadavg_at_start']:.2f}")
    if meta["loadavg_at_start"] > 0.5:
        log("warning: the machine is busy; other work on its CPUs makes every figure noisier")
    records = []
    try:
        run_all(opts, servers, scenarios, records)
    except KeyboardInterrupt:
        log("interrupted: reporting what was measured so far")
    finally:
        Proc.stop_all()
    meta["loadavg_at_end"] = os.getloadavg()[0]
    summary = summarise(records, servers, scenarios)
    text = report(summary, servers, scenarios, opts)
    print(f"# rwsgi benchmark, {meta['date']}\n# {meta['cpu']}, nproc {meta['nproc']}, "
          f"kernel {meta['kernel']}, Python {meta['python']}, load average {meta['loadavg_at_start']:.2f} "
          f"at start, {meta['loadavg_at_end']:.2f} at end\n# "
          + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v) + "\n")
    print(text)
    meta["options"] = {k: v for k, v in vars(opts).items()}
    Path(opts.json).write_text(json.dumps({"meta": meta, "summary": summary, "runs": records}, indent=1))
    log(f"raw results in {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
