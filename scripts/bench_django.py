"""Thread scenarios of scripts/bench (issue 13), and the variant machinery that
bench_memory.py shares: each scenario is one URL and a list of *variants*, a
server with its worker and thread counts and extra flags, each a table row.

  django-io      GET /io of the Django project in scripts/bench-apps/benchsite,
                 a view that sleeps 20 ms (a database query's stand-in), 2
                 workers x 8 threads, wrk -c64; ideal = workers x threads / 20 ms
  django-cpu     GET /cpu, a ~2 ms template render holding the GIL: what
                 8 threads cost against 1 when there is nothing to wait for
  hello-threads  the hello app, keep-alive: --threads 8 against --threads 1
                 (goal for rwsgi: >= 0.8x)

Variants are interleaved within each round; tables show medians over rounds.
"""

import os
import re
import statistics
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from bench_common import (CLK_TCK, HOST, ROOT, VENV, WORK, Proc, StartError, cpu_ticks, fmt, free_port,
                          http_get, keeps_alive, log, memory_mib, run_wrk, table, wait_ready)

DJANGO_DIR = ROOT / "scripts/bench-apps"
DJANGO_TARGET = "benchsite.wsgi:application"
DJANGO_DB = WORK / "django.sqlite3"


@dataclass(frozen=True)
class Variant:
    label: str
    server: str         # rwsgi, uwsgi, gunicorn or granian (filtered by --servers)
    workers: int
    threads: int = 1
    extra: tuple = ()   # the server's own flags for this row
    needs: str = ""     # an rwsgi flag the row needs; n/a when `rwsgi --help` lacks it
    base: str = ""      # label of the row this one is compared with (ratio tables)


def threaded(workers):
    """Every server with 8 threads and with 1, rwsgi first."""
    rows = []
    for server, t8, t1 in (("rwsgi", "--threads 8", "--threads 1"), ("uwsgi", "--threads 8", "(1 thread)"),
                           ("gunicorn", "-k gthread --threads 8", "-k sync"),
                           ("granian", "--blocking-threads 8", "--blocking-threads 1")):
        rows.append(Variant(f"{server} {t8}", server, workers, 8))
        rows.append(Variant(f"{server} {t1}", server, workers, 1, base=f"{server} {t8}"))
    return rows


@dataclass(frozen=True)
class Scenario:
    name: str
    app: str            # "django" or "hello"
    path: str
    connections: int
    variants: tuple
    wait_s: float = 0.0  # per-request wait of an I/O-bound view: sets the ideal req/s
    title: str = ""


IO_VARIANTS = (
    Variant("rwsgi --processes 2 --threads 8", "rwsgi", 2, 8),
    Variant("rwsgi --processes 2", "rwsgi", 2, 1),
    Variant("uwsgi --processes 2 --threads 8", "uwsgi", 2, 8),
    Variant("gunicorn -w 2 --threads 8 (gthread)", "gunicorn", 2, 8),
    Variant("granian --workers 2 --blocking-threads 8", "granian", 2, 8),
)
SCENARIOS = {
    "django-io": Scenario("django-io", "django", "/io", 64, IO_VARIANTS, 0.020,
                          "Django view sleeping 20 ms (I/O-bound), 2 workers"),
    "django-cpu": Scenario("django-cpu", "django", "/cpu", 64, tuple(threaded(2)), 0.0,
                           "Django view rendering a template, ~2 ms of CPU (CPU-bound), 2 workers"),
    "hello-threads": Scenario("hello-threads", "hello", "/", 32, tuple(threaded(2)), 0.0,
                              "hello app, 2 workers, 8 threads against 1"),
}


# --- servers --------------------------------------------------------------------

def app_location(app, opts):
    """(directory, module:attr) of a scenario's app."""
    if app == "django":
        return DJANGO_DIR, DJANGO_TARGET
    hello = Path(opts.hello_app).resolve()
    return hello.parent, f"{hello.stem}:application"


def with_baseline(sc):
    """sc with an rwsgi-baseline row (--baseline-bin, an older build, one
    thread: it may predate --threads) beside rwsgi's one-thread row."""
    one = next((v for v in sc.variants if v.server == "rwsgi" and v.threads == 1), None)
    if one is None:
        return sc
    row = Variant("rwsgi-baseline (1 thread)", "rwsgi-baseline", one.workers, 1, base=one.label)
    return replace(sc, variants=sc.variants + (row,))


def variant_argv(v, app, port, opts):
    directory, target = app_location(app, opts)
    addr, bindir = f"{HOST}:{port}", VENV / "bin"
    if v.server == "rwsgi-baseline":
        return [opts.baseline_bin, "--http", addr, "--module", target, "--pythonpath", directory, "--home", VENV,
                "--processes", v.workers, "--disable-logging", *v.extra]
    if v.server == "rwsgi":
        return [opts.rwsgi_bin, "--http", addr, "--module", target, "--pythonpath", directory, "--home", VENV,
                "--processes", v.workers, "--threads", v.threads, "--disable-logging", *v.extra]
    if v.server == "uwsgi":
        threads = ["--threads", v.threads] if v.threads > 1 else []
        return [bindir / "uwsgi", "--http11-socket", addr, "--module", target, "--pythonpath", directory,
                "--home", VENV, "--processes", v.workers, *threads, "--master", "--disable-logging",
                "--die-on-term", "--need-app", *v.extra]
    if v.server == "gunicorn":
        worker = ["-k", "gthread", "--threads", v.threads] if v.threads > 1 else ["-k", "sync"]
        return [bindir / "gunicorn", "-w", v.workers, *worker, "-b", addr, "--pythonpath", directory,
                "--log-level", "warning", *v.extra, target]
    if v.server == "granian":
        return [bindir / "granian", "--interface", "wsgi", "--workers", v.workers, "--blocking-threads",
                v.threads, "--runtime-threads", "1", "--no-access-log", "--log-level", "warning",
                "--host", HOST, "--port", port, "--working-dir", directory, *v.extra, target]
    raise ValueError(v.server)


def rwsgi_lacks(flag, opts):
    """Why rwsgi cannot run a row that needs flag, or None if its --help lists it."""
    if not flag:
        return None
    if flag not in opts.rwsgi_flags:
        try:
            out = subprocess.run([opts.rwsgi_bin, "--help"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            out = f"(rwsgi --help failed: {e})"
        opts.rwsgi_flags[flag] = re.search(rf"(^|\s){re.escape(flag)}\b", out) is not None
    return None if opts.rwsgi_flags[flag] else f"this rwsgi has no {flag} (not in rwsgi --help)"


def slug(label):
    return re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")


def start_variant(sc, v, opts, extra_env=None):
    """Start v on a free port and wait until sc.path answers 200; (proc, port)."""
    logfile = WORK / "logs" / f"{sc.name}-{slug(v.label)}.log"
    for _ in range(3):
        port = free_port()
        proc = Proc(variant_argv(v, sc.app, port, opts), logfile, env=extra_env)
        if wait_ready(proc, lambda: (http_get(port, sc.path, timeout=5) or (0,))[0] == 200, 60.0):
            return proc, port
        reason = proc.tail()
        proc.stop()
        if "in use" not in reason.lower():
            raise StartError(reason or "not answering 200 within 60 s")
    raise StartError("could not bind a free port")


def prepare(scenarios):
    """Create the Django project's SQLite database (migrate) if a scenario uses it."""
    if not any(sc.app == "django" for sc in scenarios):
        return
    os.environ["BENCH_DJANGO_DB"] = str(DJANGO_DB)
    code = ("import django; django.setup(); from django.core.management import call_command; "
            "call_command('migrate', verbosity=0)")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="benchsite.settings")
    r = subprocess.run([VENV / "bin/python", "-c", code], cwd=DJANGO_DIR, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        log(f"warning: Django migrate failed; django-* scenarios will be n/a: {r.stderr.strip()[-300:]}")


# --- runs ------------------------------------------------------------------------

def measure(sc, v, opts, round_no, watch=None):
    """One start of v: warm-up, then one wrk run of sc; a record. watch(proc)
    is called just before the run and returns a callable that, after it, adds
    its own fields to the record (bench_memory's recycling figures)."""
    proc = None
    try:
        proc, port = start_variant(sc, v, opts)
        conn_ok = keeps_alive(port, sc.path)
        if opts.warmup > 0:
            run_wrk(port, sc.path, opts.warmup, True, sc.connections)
        mem = memory_mib(proc.pid)
        finish = watch(proc) if watch else None
        cpu0 = cpu_ticks(proc.pid)
        try:
            w = run_wrk(port, sc.path, opts.duration, True, sc.connections)
        finally:
            extra = finish() if finish else {}
        cpu = cpu_ticks(proc.pid) - cpu0
        if not proc.alive():
            raise StartError(f"server died during the run: {proc.tail()}")
        n = w["requests"]
        rec = dict(server=v.label, scenario=sc.name, round=round_no, status="ok",
                   rps=n / (w["duration_us"] / 1e6), p50_ms=w["p50_us"] / 1000, p99_ms=w["p99_us"] / 1000,
                   errors=sum(w[k] for k in ("connect", "read", "write", "status", "timeout")),
                   cpu_us=(cpu * 1e6 / CLK_TCK / n) if n else None, pss_mib=mem["pss"], conn_ok=conn_ok, wrk=w,
                   **extra)
        log(f"  {v.label:42s} {sc.name:14s} {rec['rps']:8.0f} req/s  p99 {rec['p99_ms']:8.2f} ms  "
            f"err {rec['errors']:<5d} cpu {fmt(rec['cpu_us'], '{:.1f}')} µs/req  pss {mem['pss']:.0f} MiB")
        return rec
    except (StartError, RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return na_record(sc, v, round_no, str(e).strip() or type(e).__name__)
    finally:
        if proc:
            proc.stop()


def na_record(sc, v, round_no, reason):
    log(f"  {v.label:42s} {sc.name:14s} n/a ({reason[:200]})")
    return dict(server=v.label, scenario=sc.name, round=round_no, status="n/a", reason=reason)


def run_rounds(opts, servers, scenarios, records, measure_fn):
    """Every round runs every scenario's variants in turn (interleaved)."""
    failed = {}
    for rnd in range(1, opts.rounds + 1 if scenarios else 1):
        log(f"round {rnd}/{opts.rounds}: {', '.join(sc.name for sc in scenarios)}")
        for sc in scenarios:
            for v in sc.variants:
                if v.server not in servers:
                    continue
                key = (sc.name, v.label)
                reason = failed.get(key) or rwsgi_lacks(v.needs, opts)
                rec = na_record(sc, v, rnd, reason) if reason else measure_fn(sc, v, opts, rnd)
                if rec["status"] == "n/a":
                    failed[key] = rec["reason"]
                records.append(rec)


def run_all(opts, servers, scenarios, records):
    run_rounds(opts, servers, scenarios, records, measure)


# --- report ----------------------------------------------------------------------

def summarise(records, sc, keys):
    """{label: medians of keys over the ok rounds, or status n/a with a reason}."""
    out = {}
    for v in sc.variants:
        runs = [r for r in records if r["scenario"] == sc.name and r["server"] == v.label]
        ok = [r for r in runs if r["status"] == "ok"]
        if not runs:
            continue
        if not ok:
            out[v.label] = {"status": "n/a", "reason": runs[0].get("reason", "")}
            continue
        med = {"status": "ok", "rounds": len(ok), "conn_ok": all(r.get("conn_ok") is not False for r in ok)}
        for k in keys:
            vals = [r[k] for r in ok if r.get(k) is not None]
            med[k] = statistics.median(vals) if vals else None
        rps = [r["rps"] for r in ok if r.get("rps")]
        med["rps_spread"] = 100 * (max(rps) - min(rps)) / med["rps"] if len(rps) > 1 and med.get("rps") else None
        out[v.label] = med
    return out


COLUMNS = [("rps", "req/s", "{:.0f}"), ("rps_spread", "±%", "{:.0f}"), ("p50_ms", "p50 ms", "{:.1f}"),
           ("p99_ms", "p99 ms", "{:.1f}"), ("errors", "errors", "{:.0f}"), ("cpu_us", "CPU µs/req", "{:.0f}"),
           ("pss_mib", "PSS MiB", "{:.1f}")]


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"


def variant_rows(sc, summ, width, row):
    """One table row per measured variant: row(variant, figures), or n/a
    padded to width columns where the variant did not run."""
    rows = []
    for v in sc.variants:
        m = summ.get(v.label)
        if m is None:
            continue
        rows.append(row(v, m) if m["status"] == "ok" else [v.label, "n/a"] + [""] * (width - 2))
    return rows


def report_scenario(sc, summ, opts):
    cols = list(COLUMNS)
    header = ["variant"] + [c[1] for c in cols] + (["ideal req/s", "% of ideal"] if sc.wait_s else [])

    def row(v, m):
        cells = [v.label] + [fmt(m[k], spec) for k, _, spec in cols]
        if sc.wait_s:
            ideal = v.workers * v.threads / sc.wait_s
            cells += [f"{ideal:.0f}", f"{100 * m['rps'] / ideal:.0f}"]
        return cells

    rows = variant_rows(sc, summ, len(header), row)
    out = [f"## {sc.name}: GET {sc.path}, {sc.title}, keep-alive, wrk -t1 -c{sc.connections} -d{opts.duration}s, "
           f"median of {opts.rounds} round(s)", "", table(header, rows), ""]
    out += [f"({label}: closes the connection after every response)" for label, m in summ.items()
            if m["status"] == "ok" and not m["conn_ok"]]
    # Each row's base ÷ the row: 8 threads ÷ 1 thread, and rwsgi (1 thread)
    # ÷ rwsgi-baseline.
    pairs = [(v, summ.get(v.base)) for v in sc.variants if v.base]
    ratio_rows = [[f"{v.base} ÷ {v.label}", ratio(b["rps"], summ[v.label]["rps"]),
                   ratio(b["cpu_us"], summ[v.label]["cpu_us"])]
                  for v, b in pairs if b and b["status"] == "ok" and summ.get(v.label, {}).get("status") == "ok"]
    if ratio_rows:
        out += [f"{sc.name} ratios (req/s goal for rwsgi 8 threads ÷ 1 on hello: >= 0.8)", "",
                table(["rows", "req/s ratio", "CPU/req ratio"], ratio_rows), ""]
    mine = summ.get(sc.variants[0].label, {})
    peers = [(v.label, summ[v.label]) for v in sc.variants
             if v.server != "rwsgi" and v.threads > 1 and summ.get(v.label, {}).get("status") == "ok"]
    if sc.wait_s and mine.get("status") == "ok" and peers:
        best_label, best = max(peers, key=lambda p: p[1]["rps"])
        low_p99 = min(p[1]["p99_ms"] for p in peers)
        out += [f"{sc.variants[0].label}: {mine['rps'] / best['rps']:.2f}x the best peer's req/s ({best_label}); "
                f"p99 {mine['p99_ms']:.1f} ms against the best peer p99 {low_p99:.1f} ms; errors {mine['errors']:.0f} "
                "(goals: >= 90 % of ideal, >= 1.00x, p99 no worse, 0 errors)", ""]
    return out


def na_lines(summary):
    """Why rows were n/a, once per scenario, row and reason."""
    notes = [f"- {name}, {label}: {m['reason'][:300]}" for name, summ in summary.items()
             for label, m in summ.items() if m["status"] != "ok"]
    return ["n/a reasons:", ""] + notes + [""] if notes else []


def report(records, scenarios, opts):
    out, summary = [], {}
    for sc in scenarios:
        summ = summarise(records, sc, [c[0] for c in COLUMNS if c[0] != "rps_spread"])
        summary[sc.name] = summ
        if summ:
            out += report_scenario(sc, summ, opts)
    return out + na_lines(summary), summary
