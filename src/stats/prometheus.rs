//! The Prometheus text exposition (format 0.0.4), from a [`Snapshot`].

use std::fmt::Write as _;

use super::{MemorySplit, Snapshot, RESPAWN_CAUSES};
use crate::scoreboard::DURATION_BUCKETS_US;

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition (format 0.0.4).
pub fn render_prometheus(s: &Snapshot) -> String {
    let mut o = String::with_capacity(4096);
    let head = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    head(
        &mut o,
        "rwsgi_build_info",
        "gauge",
        "rwsgi version (value is always 1).",
    );
    let _ = writeln!(
        o,
        "rwsgi_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    head(
        &mut o,
        "rwsgi_workers",
        "gauge",
        "Worker processes by state.",
    );
    for state in ["starting", "idle", "busy", "stopping"] {
        let n = s.workers.iter().filter(|w| w.status == state).count();
        let _ = writeln!(o, "rwsgi_workers{{state=\"{state}\"}} {n}");
    }

    head(
        &mut o,
        "rwsgi_threads",
        "gauge",
        "App threads of live workers, busy with a request or idle.",
    );
    let busy: usize = s
        .workers
        .iter()
        .map(|w| w.cores.iter().filter(|c| c.in_request).count())
        .sum();
    let all: usize = s.workers.iter().map(|w| w.cores.len()).sum();
    let _ = writeln!(o, "rwsgi_threads{{state=\"busy\"}} {busy}");
    let _ = writeln!(o, "rwsgi_threads{{state=\"idle\"}} {}", all - busy);

    let t = s.totals();
    head(
        &mut o,
        "rwsgi_queue_wait_seconds",
        "summary",
        "Time complete requests waited for a free app thread.",
    );
    let _ = writeln!(
        o,
        "rwsgi_queue_wait_seconds_sum {}\nrwsgi_queue_wait_seconds_count {}",
        t.queue_wait_us as f64 / 1e6,
        t.queued
    );
    head(
        &mut o,
        "rwsgi_requests_total",
        "counter",
        "Requests answered, by status class.",
    );
    for (i, n) in t.by_class.iter().enumerate() {
        let _ = writeln!(o, "rwsgi_requests_total{{class=\"{}xx\"}} {n}", i + 1);
    }

    head(
        &mut o,
        "rwsgi_request_duration_seconds",
        "histogram",
        "Time from the start of the app call to the end of the response.",
    );
    let mut cumulative = 0;
    for (i, bound) in DURATION_BUCKETS_US.iter().enumerate() {
        cumulative += t.buckets[i];
        let _ = writeln!(
            o,
            "rwsgi_request_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1e6
        );
    }
    cumulative += t.buckets[DURATION_BUCKETS_US.len()];
    let _ = writeln!(
        o,
        "rwsgi_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        o,
        "rwsgi_request_duration_seconds_sum {}",
        t.running_us as f64 / 1e6
    );
    let _ = writeln!(o, "rwsgi_request_duration_seconds_count {cumulative}");

    head(
        &mut o,
        "rwsgi_exceptions_total",
        "counter",
        "Exceptions raised by the app.",
    );
    let _ = writeln!(o, "rwsgi_exceptions_total {}", t.exceptions);
    head(
        &mut o,
        "rwsgi_response_bytes_total",
        "counter",
        "Response body bytes sent.",
    );
    let _ = writeln!(o, "rwsgi_response_bytes_total {}", t.tx_bytes);
    for (name, help, n) in [
        (
            "rwsgi_static_requests_total",
            "Requests answered from --static-map (also counted in rwsgi_requests_total).",
            t.static_requests,
        ),
        (
            "rwsgi_static_bytes_total",
            "Static file body bytes sent.",
            t.static_bytes,
        ),
        (
            "rwsgi_static_not_modified_total",
            "Static file requests answered 304 Not Modified.",
            t.static_not_modified,
        ),
    ] {
        head(&mut o, name, "counter", help);
        let _ = writeln!(o, "{name} {n}");
    }

    head(
        &mut o,
        "rwsgi_respawns_total",
        "counter",
        "Workers replaced, by cause.",
    );
    for (cause, n) in RESPAWN_CAUSES.iter().zip(s.respawns) {
        let _ = writeln!(o, "rwsgi_respawns_total{{cause=\"{cause}\"}} {n}");
    }
    head(
        &mut o,
        "rwsgi_harakiri_total",
        "counter",
        "Requests killed by --harakiri.",
    );
    let _ = writeln!(o, "rwsgi_harakiri_total {}", s.respawns[3]);

    head(
        &mut o,
        "rwsgi_listen_queue",
        "gauge",
        "Connections waiting in each listener's accept queue.",
    );
    for sock in &s.sockets {
        let _ = writeln!(
            o,
            "rwsgi_listen_queue{{socket=\"{}\"}} {}",
            label(&sock.name),
            sock.queue
        );
    }
    head(
        &mut o,
        "rwsgi_listen_queue_max",
        "gauge",
        "Accept queue size (backlog) of each listener.",
    );
    for sock in &s.sockets {
        let _ = writeln!(
            o,
            "rwsgi_listen_queue_max{{socket=\"{}\"}} {}",
            label(&sock.name),
            sock.max_queue
        );
    }

    head(
        &mut o,
        "rwsgi_worker_rss_bytes",
        "gauge",
        "Resident memory of each worker.",
    );
    for w in &s.workers {
        let _ = writeln!(
            o,
            "rwsgi_worker_rss_bytes{{worker=\"{}\",pid=\"{}\"}} {}",
            w.id, w.pid, w.rss
        );
    }
    type Metric = (&'static str, &'static str, fn(&MemorySplit) -> u64);
    let split: [Metric; 3] = [
        (
            "pss",
            "Proportional memory of each worker (shared pages divided among their sharers).",
            |m| m.pss,
        ),
        (
            "uss",
            "Private memory of each worker (what it alone costs).",
            |m| m.uss,
        ),
        (
            "shared",
            "Memory each worker shares with other processes (the template's, under --preload).",
            |m| m.shared,
        ),
    ];
    for (kind, help, get) in split {
        let name = format!("rwsgi_worker_{kind}_bytes");
        head(&mut o, &name, "gauge", help);
        for w in &s.workers {
            let _ = writeln!(
                o,
                "{name}{{worker=\"{}\",pid=\"{}\"}} {}",
                w.id,
                w.pid,
                get(&w.memory)
            );
        }
    }
    head(
        &mut o,
        "rwsgi_worker_requests_total",
        "counter",
        "Requests served by each live worker.",
    );
    for w in &s.workers {
        let _ = writeln!(
            o,
            "rwsgi_worker_requests_total{{worker=\"{}\",pid=\"{}\"}} {}",
            w.id, w.pid, w.counters.requests
        );
    }
    o
}
