"""Helpers shared by the scripts/bench drivers (bench.py, bench_nginx.py,
bench_django.py, bench_memory.py): child processes in their own groups, /proc
figures (CPU time and PSS of a process tree), readiness polls, wrk, tables.
"""

import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
VENV = WORK / "venv"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

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
    """CPU time of root's tree: utime + stime of the live processes, plus
    cutime + cstime, the time of children they reaped (recycled workers)."""
    return sum(int(f[11]) + int(f[12]) + int(f[13]) + int(f[14]) for f in proc_tree(root).values())


def pss_mib(root):
    total_kb = 0
    for pid in proc_tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total_kb += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            pass
    return total_kb / 1024


def memory_mib(root):
    """{pss, uss, procs} of root's process tree: PSS splits shared pages among
    their sharers; USS (Private_Clean + Private_Dirty) is what each process
    alone holds, so PSS - USS is the tree's share of shared memory."""
    pss = uss = 0
    pids = list(proc_tree(root))
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key == "Pss":
                        pss += int(rest.split()[0])
                    elif key in ("Private_Clean", "Private_Dirty"):
                        uss += int(rest.split()[0])
        except OSError:
            pass
    return {"pss": pss / 1024, "uss": uss / 1024, "procs": len(pids)}


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Proc:
    """A child in its own process group, logging to a file, killed as a group."""
    live = []

    def __init__(self, argv, logfile, cwd=ROOT, env=None):
        self.argv = [str(a) for a in argv]
        self.logfile = logfile
        with open(logfile, "ab") as out:
            out.write(f"\n$ {' '.join(self.argv)}\n".encode())
            out.flush()
            self.p = subprocess.Popen(self.argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True,
                                      env=dict(os.environ, **env) if env else None)
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


class StartError(Exception):
    pass

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


# --- report helpers ---------------------------------------------------------------

def fmt(value, spec):
    return "-" if value is None else spec.format(value)


def table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(r, widths)))
             for r in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


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
    for pkg in ("uWSGI", "gunicorn", "granian", "bjoern", "Flask", "Django"):
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
