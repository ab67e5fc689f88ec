"""Memory and recycling scenarios of scripts/bench (issue 15), on the Django
project of scripts/bench-apps/benchsite (admin, auth, sessions, messages,
templates, the ORM on SQLite).

  django-memory   8 workers, warmed with requests to /orm, /admin/login/, /cpu
                  and /io (Connection: close, so every worker gets some), then
                  PSS and USS of the whole process tree; rwsgi's fork-to-ready
                  time of a worker at start-up and after a SIGKILL
  django-recycle  2 workers, GET /orm keep-alive, throughput with
                  --max-requests 100 (rwsgi: --min-worker-lifetime 0) against no
                  recycling, and rwsgi's fork-to-ready time of the recycled workers

Rows that need `rwsgi --preload` are n/a while `rwsgi --help` does not list it.
rwsgi runs with --log-level debug here: fork-to-ready is the time between its
"spawned worker N (pid P" line and its "worker N (pid P) ready" line
(millisecond timestamps, so +-1 ms).
"""

import os
import re
import signal
import statistics
import threading
from datetime import datetime

import bench_django
from bench_common import StartError, fmt, log, memory_mib, run_wrk, table, wait_ready
from bench_django import Scenario, Variant, measure, na_record, start_variant

DEBUG = ("--log-level", "debug")
RECYCLE = ("--max-requests", "100", "--min-worker-lifetime", "0")
WARM_PATHS = ["/orm", "/admin/login/", "/cpu", "/io"]
WORKERS = 8

MEMORY_VARIANTS = (
    Variant("rwsgi (each worker imports the app)", "rwsgi", WORKERS, extra=DEBUG),
    Variant("rwsgi --preload", "rwsgi", WORKERS, extra=("--preload",) + DEBUG, needs="--preload"),
    Variant("gunicorn", "gunicorn", WORKERS),
    Variant("gunicorn --preload", "gunicorn", WORKERS, extra=("--preload",)),
    Variant("uwsgi (imports in the master)", "uwsgi", WORKERS),
    Variant("uwsgi --lazy-apps", "uwsgi", WORKERS, extra=("--lazy-apps",)),
)
RECYCLE_VARIANTS = (
    Variant("rwsgi", "rwsgi", 2, extra=DEBUG),
    Variant("rwsgi --max-requests 100", "rwsgi", 2, extra=RECYCLE + DEBUG, base="rwsgi"),
    Variant("rwsgi --preload", "rwsgi", 2, extra=("--preload",) + DEBUG, needs="--preload"),
    Variant("rwsgi --preload --max-requests 100", "rwsgi", 2, extra=("--preload",) + RECYCLE + DEBUG,
            needs="--preload", base="rwsgi --preload"),
    Variant("gunicorn --preload", "gunicorn", 2, extra=("--preload",)),
    Variant("gunicorn --preload --max-requests 100", "gunicorn", 2, extra=("--preload", "--max-requests", "100"),
            base="gunicorn --preload"),
    Variant("uwsgi", "uwsgi", 2),
    # uWSGI's --min-worker-lifetime (default 10 s) would hold the recycling back.
    Variant("uwsgi --max-requests 100", "uwsgi", 2, extra=("--max-requests", "100", "--min-worker-lifetime", "1"),
            base="uwsgi"),
)
SCENARIOS = {
    "django-memory": Scenario("django-memory", "django", "/orm", 16, MEMORY_VARIANTS, 0.0,
                              f"Django admin/ORM/templates, {WORKERS} workers, after warm-up"),
    "django-recycle": Scenario("django-recycle", "django", "/orm", 32, RECYCLE_VARIANTS, 0.0,
                               "Django ORM + template view, 2 workers, recycling against none"),
}


# --- fork-to-ready from rwsgi's log -------------------------------------------------

SPAWNED = re.compile(r"^\[([^\]\s]+)[^\]]*\].*?spawned worker \d+ \(pid (\d+)")
READY = re.compile(r"^\[([^\]\s]+)[^\]]*\].*?worker \d+ \(pid (\d+)\) ready")
# The worker logs how long after its fork it was ready (under --preload its
# line may come before the master's "spawned" line).
READY_MS = re.compile(r"worker \d+ \(pid (\d+)\) ready ([0-9.]+) ms after its fork")


def log_events(proc):
    """({pid: spawn time}, {pid: ready time}) from this start's part of the log."""
    try:
        with open(proc.logfile, errors="replace") as f:
            text = f.read()
    except OSError:
        return {}, {}
    spawned, ready = {}, {}
    for line in text[text.rfind("\n$ "):].splitlines():
        for pattern, into in ((SPAWNED, spawned), (READY, ready)):
            m = pattern.match(line)
            if m:
                try:
                    into[int(m.group(2))] = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
                except ValueError:
                    pass
    return spawned, ready


def ready_ms(proc):
    """{pid: fork-to-ready ms} of the workers this start logged as ready."""
    try:
        with open(proc.logfile, errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    logged = {int(m.group(1)): float(m.group(2))
              for m in READY_MS.finditer(text[text.rfind("\n$ "):])}
    if logged:
        return logged
    spawned, ready = log_events(proc)
    return {p: (ready[p] - spawned[p]).total_seconds() * 1000 for p in ready if p in spawned}


def fork_ready_ms(proc, exclude=()):
    return [ms for p, ms in ready_ms(proc).items() if p not in exclude]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_and_time(proc, samples):
    """SIGKILL a ready worker, wait for its replacement to log ready; ms each."""
    times = []
    for _ in range(samples):
        spawned, ready = log_events(proc)
        victims = [p for p in ready if p in spawned and alive(p)]
        if not victims:
            break
        os.kill(victims[0], signal.SIGKILL)
        known = set(spawned)
        new = wait_ready(proc, lambda: [p for p in log_events(proc)[1] if p not in known], 30.0)
        if not new:
            break
        times += [ms for p, ms in ready_ms(proc).items() if p in new]
    return times


# --- runs ----------------------------------------------------------------------------

def measure_memory(sc, v, opts, round_no):
    proc = None
    try:
        proc, port = start_variant(sc, v, opts)
        for path in WARM_PATHS:
            run_wrk(port, path, max(1, opts.warmup), False, sc.connections)
        if not proc.alive():
            raise StartError(f"server died during the warm-up: {proc.tail()}")
        mem = memory_mib(proc.pid)
        rec = dict(server=v.label, scenario=sc.name, round=round_no, status="ok", pss_mib=mem["pss"],
                   uss_mib=mem["uss"], procs=mem["procs"], startup_ready_ms=None, kill_ready_ms=None)
        if v.server == "rwsgi":
            start = fork_ready_ms(proc)
            rec["startup_ready_ms"] = statistics.median(start) if start else None
            kills = kill_and_time(proc, 1 if opts.quick else 3)
            rec["kill_ready_ms"] = statistics.median(kills) if kills else None
        log(f"  {v.label:42s} {sc.name:14s} PSS {mem['pss']:6.1f} MiB  USS {mem['uss']:6.1f} MiB  "
            f"{mem['procs']} processes  fork->ready start {fmt(rec['startup_ready_ms'], '{:.0f}')} ms, "
            f"after kill {fmt(rec['kill_ready_ms'], '{:.0f}')} ms")
        return rec
    except (StartError, RuntimeError, OSError) as e:
        return na_record(sc, v, round_no, str(e).strip() or type(e).__name__)
    finally:
        if proc:
            proc.stop()


def watch_workers(proc):
    """Counts the worker pids seen during a run (children and grandchildren of
    the server, every 20 ms) and rwsgi's fork-to-ready of those it spawned."""
    seen, before, stop = set(), set(log_events(proc)[0]), threading.Event()

    def kids(pid):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def poll():
        while not stop.wait(0.02):
            for k in kids(proc.pid):
                seen.add(k)
                seen.update(kids(k))
    first = {k for k in kids(proc.pid)}
    t = threading.Thread(target=poll, daemon=True)
    t.start()

    def finish():
        stop.set()
        t.join(5)
        # Workers forked near the end of the run: give them time to log ready.
        pending = lambda: [p for p in log_events(proc)[0] if p not in before and p not in ready_ms(proc)]
        wait_ready(proc, lambda: not pending(), 10.0)
        times = fork_ready_ms(proc, exclude=before)
        return dict(new_workers=len(seen - first), recycle_ready_ms=statistics.median(times) if times else None,
                    recycle_ready_max_ms=max(times) if times else None)
    return finish


def measure_recycle(sc, v, opts, round_no):
    return measure(sc, v, opts, round_no, watch=watch_workers)


def run_all(opts, servers, scenarios, records):
    for sc in scenarios:
        fn = measure_memory if sc.name == "django-memory" else measure_recycle
        bench_django.run_rounds(opts, servers, [sc], records, fn)


# --- report ----------------------------------------------------------------------------

def report_memory(sc, summ):
    header = ["variant", "PSS MiB", "USS MiB", "processes", "fork→ready ms (start-up)", "fork→ready ms (after kill)"]
    rows = bench_django.variant_rows(sc, summ, len(header), lambda v, m: [
        v.label, fmt(m["pss_mib"], "{:.1f}"), fmt(m["uss_mib"], "{:.1f}"), fmt(m["procs"], "{:.0f}"),
        fmt(m["startup_ready_ms"], "{:.0f}"), fmt(m["kill_ready_ms"], "{:.0f}")])
    out = [f"## {sc.name}: {sc.title} (GET {', '.join(WARM_PATHS)}, Connection: close), whole process tree", "",
           table(header, rows), ""]
    pss = {label: m["pss_mib"] for label, m in summ.items() if m["status"] == "ok"}
    pre, plain, gpre = pss.get("rwsgi --preload"), pss.get(sc.variants[0].label), pss.get("gunicorn --preload")
    out += [f"rwsgi --preload ÷ gunicorn --preload: {bench_django.ratio(pre, gpre)} (goal <= 0.90); "
            f"rwsgi --preload ÷ rwsgi without: {bench_django.ratio(pre, plain)} (goal <= 0.60); "
            "fork→ready goal <= 5 ms with --preload", ""]
    return out


def report_recycle(sc, summ, opts):
    header = ["variant", "req/s", "p99 ms", "errors", "CPU µs/req", "new workers", "fork→ready ms (median/max)",
              "÷ no recycling"]

    def row(v, m):
        base = summ.get(v.base, {}) if v.base else {}
        ready = ("-" if m.get("recycle_ready_ms") is None else
                 f"{m['recycle_ready_ms']:.0f}/{m['recycle_ready_max_ms']:.0f}")
        return [v.label, fmt(m["rps"], "{:.0f}"), fmt(m["p99_ms"], "{:.1f}"), fmt(m["errors"], "{:.0f}"),
                fmt(m["cpu_us"], "{:.0f}"), fmt(m["new_workers"], "{:.0f}"), ready,
                bench_django.ratio(m["rps"], base.get("rps")) if v.base else ""]

    rows = bench_django.variant_rows(sc, summ, len(header), row)
    return [f"## {sc.name}: GET {sc.path}, {sc.title}, keep-alive, wrk -t1 -c{sc.connections} -d{opts.duration}s, "
            f"median of {opts.rounds} round(s) (goal: >= 0.90 of no recycling, with --preload)", "",
            table(header, rows), ""]


def report(records, scenarios, opts):
    out, summary = [], {}
    for sc in scenarios:
        if sc.name == "django-memory":
            summ = bench_django.summarise(records, sc, ["pss_mib", "uss_mib", "procs", "startup_ready_ms",
                                                        "kill_ready_ms"])
            out += report_memory(sc, summ) if summ else []
        else:
            summ = bench_django.summarise(records, sc, ["rps", "p99_ms", "errors", "cpu_us", "new_workers",
                                                        "recycle_ready_ms", "recycle_ready_max_ms"])
            out += report_recycle(sc, summ, opts) if summ else []
        summary[sc.name] = summ
    return out + bench_django.na_lines(summary), summary
