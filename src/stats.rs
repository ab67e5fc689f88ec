//! What the stats and metrics endpoints say: a [`Snapshot`] the master takes
//! from the scoreboard and its own counters, rendered as uWSGI's stats JSON
//! (so `uwsgitop` and other tools read it unchanged) or as Prometheus text
//! (format 0.0.4). Rendering is pure; the master does the I/O.

use std::fmt::Write as _;

use crate::log::access::json_string;
use crate::scoreboard::{Counters, DURATION_BUCKETS_US};

/// Why workers were replaced, as the metrics label them.
pub const RESPAWN_CAUSES: [&str; 5] = ["crash", "max-requests", "rss", "harakiri", "reload"];

#[derive(Debug, Clone, Default)]
pub struct SocketStat {
    pub name: String,
    pub proto: &'static str,
    pub queue: u64,
    pub max_queue: u64,
}

/// One app thread of a worker (uWSGI's "core").
#[derive(Debug, Clone, Default)]
pub struct CoreStat {
    pub requests: u64,
    pub in_request: bool,
    /// `METHOD target` of the current request, escaped; empty when idle.
    pub label: String,
}

#[derive(Debug, Clone, Default)]
pub struct WorkerStat {
    pub id: usize,
    pub pid: i32,
    /// "idle", "busy", "starting" or "stopping" (uwsgitop knows idle/busy).
    pub status: &'static str,
    pub counters: Counters,
    pub delta_requests: u64,
    pub rss: u64,
    pub vsz: u64,
    /// Proportional, private (USS) and shared memory, from smaps_rollup
    /// (rwsgi's own fields; shared is large under `--preload`).
    pub memory: MemorySplit,
    /// Unix seconds of the worker's spawn.
    pub last_spawn: u64,
    pub respawn_count: u64,
    pub harakiri_count: u64,
    pub in_request: bool,
    /// The app threads (`--threads`).
    pub cores: Vec<CoreStat>,
}

/// A worker's memory by sharing, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemorySplit {
    pub pss: u64,
    pub uss: u64,
    pub shared: u64,
}

/// rwsgi's fields after uWSGI's in a worker's JSON object (which `o` ends).
fn append_memory(o: &mut String, m: &MemorySplit) {
    if o.ends_with('}') {
        o.pop();
        let _ = write!(
            o,
            ",\"pss\":{},\"uss\":{},\"shared\":{}}}",
            m.pss, m.uss, m.shared
        );
    }
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    pub sockets: Vec<SocketStat>,
    pub workers: Vec<WorkerStat>,
    /// Counters of workers that have exited, so totals never go down.
    pub retired: Counters,
    /// Per cause, in the order of [`RESPAWN_CAUSES`].
    pub respawns: [u64; 5],
}

impl Snapshot {
    pub fn listen_queue(&self) -> u64 {
        self.sockets.iter().map(|s| s.queue).sum()
    }

    /// Counters of every worker ever: live ones plus retired ones.
    pub fn totals(&self) -> Counters {
        let mut t = self.retired.clone();
        for w in &self.workers {
            t.add(&w.counters);
        }
        t
    }
}

/// uWSGI's stats document.
pub fn render_json(s: &Snapshot) -> String {
    let mut o = String::with_capacity(1024 + 512 * s.workers.len());
    let busy = s.workers.iter().filter(|w| w.in_request).count();
    let _ = write!(
        o,
        "{{\"version\":\"{}\",\"listen_queue\":{},\"listen_queue_errors\":0,\"signal_queue\":0,\"load\":{busy},\"pid\":{},\"uid\":{},\"gid\":{},\"cwd\":",
        env!("CARGO_PKG_VERSION"),
        s.listen_queue(),
        s.pid,
        s.uid,
        s.gid
    );
    json_string(&mut o, &s.cwd);
    o.push_str(",\"locks\":[],\"sockets\":[");
    for (i, sock) in s.sockets.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"name\":");
        json_string(&mut o, &sock.name);
        let _ = write!(
            o,
            ",\"proto\":\"{}\",\"queue\":{},\"max_queue\":{},\"shared\":0,\"can_offload\":0}}",
            sock.proto, sock.queue, sock.max_queue
        );
    }
    o.push_str("],\"workers\":[");
    for (i, w) in s.workers.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let c = &w.counters;
        let avg_rt = c.running_us.checked_div(c.requests).unwrap_or(0);
        let _ = write!(
            o,
            "{{\"id\":{},\"pid\":{},\"accepting\":1,\"requests\":{},\"delta_requests\":{},\"exceptions\":{},\"harakiri_count\":{},\"signals\":0,\"signal_queue\":0,\"status\":\"{}\",\"rss\":{},\"vsz\":{},\"running_time\":{},\"last_spawn\":{},\"respawn_count\":{},\"tx\":{},\"avg_rt\":{avg_rt},\"apps\":[],\"cores\":[",
            w.id,
            w.pid,
            c.requests,
            w.delta_requests,
            c.exceptions,
            w.harakiri_count,
            w.status,
            w.rss,
            w.vsz,
            c.running_us,
            w.last_spawn,
            w.respawn_count,
            c.tx_bytes,
        );
        let single = [CoreStat {
            requests: c.requests,
            in_request: w.in_request,
            label: String::new(),
        }];
        let cores = if w.cores.is_empty() {
            &single[..]
        } else {
            &w.cores[..]
        };
        for (i, core) in cores.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            // Static files are served by the I/O thread: counted on core 0.
            let statics = if i == 0 { c.static_requests } else { 0 };
            let _ = write!(
                o,
                "{{\"id\":{i},\"requests\":{},\"static_requests\":{statics},\"routed_requests\":0,\"offloaded_requests\":0,\"write_errors\":0,\"read_errors\":0,\"in_request\":{},\"vars\":[],\"req_info\":{{",
                core.requests,
                u8::from(core.in_request),
            );
            if core.in_request && !core.label.is_empty() {
                o.push_str("\"request\":");
                json_string(&mut o, &core.label);
            }
            o.push_str("}}");
        }
        o.push_str("]}");
        append_memory(&mut o, &w.memory);
    }
    o.push_str("]}");
    o
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let mut c = Counters {
            requests: 10,
            exceptions: 1,
            tx_bytes: 130,
            running_us: 5000,
            static_requests: 4,
            static_bytes: 100,
            static_not_modified: 1,
            ..Counters::default()
        };
        c.by_class = [0, 9, 0, 0, 1];
        c.buckets[0] = 9;
        c.buckets[13] = 1;
        Snapshot {
            pid: 42,
            cwd: "/srv/\"app\"".into(),
            sockets: vec![SocketStat {
                name: "127.0.0.1:8000".into(),
                proto: "http",
                queue: 3,
                max_queue: 1024,
            }],
            workers: vec![WorkerStat {
                id: 1,
                pid: 43,
                status: "idle",
                counters: c.clone(),
                ..WorkerStat::default()
            }],
            retired: c,
            respawns: [1, 2, 0, 1, 4],
            ..Snapshot::default()
        }
    }

    #[test]
    fn json_has_the_fields_uwsgitop_reads() {
        let j = render_json(&snapshot());
        for needle in [
            "\"listen_queue\":3",
            "\"cwd\":\"/srv/\\\"app\\\"\"",
            "\"workers\":[{\"id\":1,\"pid\":43,",
            "\"avg_rt\":500,",
            "\"status\":\"idle\"",
            "\"max_queue\":1024",
            "\"in_request\":0",
            "\"static_requests\":4,",
        ] {
            assert!(j.contains(needle), "{needle} in {j}");
        }
    }

    #[test]
    fn prometheus_totals_include_retired_workers() {
        let p = render_prometheus(&snapshot());
        for needle in [
            "rwsgi_requests_total{class=\"2xx\"} 18\n",
            "rwsgi_request_duration_seconds_bucket{le=\"0.001\"} 18\n",
            "rwsgi_request_duration_seconds_bucket{le=\"+Inf\"} 20\n",
            "rwsgi_request_duration_seconds_count 20\n",
            "rwsgi_respawns_total{cause=\"reload\"} 4\n",
            "rwsgi_workers{state=\"idle\"} 1\n",
            "rwsgi_listen_queue{socket=\"127.0.0.1:8000\"} 3\n",
            "rwsgi_static_requests_total 8\n",
            "rwsgi_static_bytes_total 200\n",
            "rwsgi_static_not_modified_total 2\n",
        ] {
            assert!(p.contains(needle), "{needle} in {p}");
        }
    }

    #[test]
    fn worker_memory_split_is_in_json_and_metrics() {
        let mut s = snapshot();
        s.workers[0].memory = MemorySplit {
            pss: 3,
            uss: 2,
            shared: 5,
        };
        let j = render_json(&s);
        assert!(j.ends_with(",\"pss\":3,\"uss\":2,\"shared\":5}]}"), "{j}");
        let p = render_prometheus(&s);
        for needle in [
            "rwsgi_worker_pss_bytes{worker=\"1\",pid=\"43\"} 3\n",
            "rwsgi_worker_uss_bytes{worker=\"1\",pid=\"43\"} 2\n",
            "rwsgi_worker_shared_bytes{worker=\"1\",pid=\"43\"} 5\n",
        ] {
            assert!(p.contains(needle), "{needle} in {p}");
        }
    }
}
