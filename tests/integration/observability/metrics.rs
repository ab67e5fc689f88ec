//! Prometheus metrics: the exposition parses, and counters move (and never
//! go down) as requests, errors, crashes, reloads and recycling happen; a
//! client leaving mid-response is counted as a request, not as an error.

use std::io::{Read, Write};
use std::net::TcpStream;

use super::{
    endpoint, endpoint_get, endpoint_port, eventually, get_ok, obs_server, raw_stats,
    require_module, scrape,
};
use crate::harness::{send_signal, TempDir, PROMPT};
use crate::http::request;

#[test]
fn metrics_parse_with_prometheus_client_and_have_every_family() {
    require_module("prometheus_client");
    let server = obs_server(&["--processes", "2", "--metrics", "127.0.0.1:0"]);
    let port = endpoint_port(&server, "Metrics");
    let kids = server.wait_for_children(2, PROMPT);
    for _ in 0..3 {
        get_ok(&server, "/", 200);
    }
    get_ok(&server, "/raise", 500);
    get_ok(&server, "/status?code=404", 404);
    get_ok(&server, "/status?code=302", 302);

    let m = eventually("6 requests in the histogram", PROMPT, || {
        let m = scrape(port);
        match m.get("rwsgi_request_duration_seconds_count") {
            6.0 => Ok(m),
            n => Err(format!("count {n}")),
        }
    });
    let fam = |name: &str, kind: &str| {
        assert_eq!(
            m.families.get(name).map(String::as_str),
            Some(kind),
            "family {name}; families: {:?}",
            m.families
        )
    };
    fam("rwsgi_build_info", "gauge");
    fam("rwsgi_workers", "gauge");
    fam("rwsgi_requests", "counter");
    fam("rwsgi_request_duration_seconds", "histogram");
    fam("rwsgi_exceptions", "counter");
    fam("rwsgi_respawns", "counter");
    fam("rwsgi_harakiri", "counter");
    fam("rwsgi_listen_queue", "gauge");
    fam("rwsgi_worker_rss_bytes", "gauge");

    let version = format!(
        "rwsgi_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m.get(&version), 1.0);
    let states: f64 = ["starting", "idle", "busy", "stopping"]
        .iter()
        .map(|s| m.get(&format!("rwsgi_workers{{state=\"{s}\"}}")))
        .sum();
    assert_eq!(states, 2.0, "workers by state add up to --processes");
    let classes: Vec<f64> = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .map(|c| m.requests(c))
        .collect();
    assert_eq!(classes, vec![0.0, 3.0, 1.0, 1.0, 1.0], "requests by class");
    assert_eq!(m.get("rwsgi_exceptions_total"), 1.0);

    // Histogram: cumulative buckets ending in +Inf == count; a positive sum.
    let buckets = m.with_prefix("rwsgi_request_duration_seconds_bucket{");
    assert!(buckets.len() >= 5, "buckets: {buckets:?}");
    let mut by_le: Vec<(f64, f64)> = buckets
        .iter()
        .map(|(k, v)| {
            let le = k.split("le=\"").nth(1).and_then(|s| s.split('"').next());
            let le = match le {
                Some("+Inf") => f64::INFINITY,
                Some(x) => x.parse().unwrap_or_else(|_| panic!("le in {k}")),
                None => panic!("no le in {k}"),
            };
            (le, *v)
        })
        .collect();
    by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        by_le.windows(2).all(|w| w[0].1 <= w[1].1),
        "buckets are cumulative: {by_le:?}"
    );
    assert_eq!(by_le.last().unwrap(), &(f64::INFINITY, 6.0));
    assert!(m.get("rwsgi_request_duration_seconds_sum") > 0.0);

    for cause in ["crash", "max-requests", "rss", "harakiri", "reload"] {
        assert_eq!(m.respawns(cause), 0.0, "respawns {cause}");
    }
    assert_eq!(m.get("rwsgi_harakiri_total"), 0.0);
    let lq = format!(
        "rwsgi_listen_queue{{socket=\"127.0.0.1:{}\"}}",
        server.port()
    );
    assert_eq!(m.get(&lq), 0.0);
    for pid in &kids {
        let per_worker = m.with_prefix("rwsgi_worker_rss_bytes{");
        assert!(
            per_worker
                .iter()
                .any(|(k, _)| k.contains(&format!("pid=\"{pid}\""))),
            "no rss sample for worker pid {pid}: {per_worker:?}"
        );
    }

    let other = endpoint_get(port, "/other");
    assert_eq!(other.status, 404, "{}", other.text());
}

#[test]
fn metrics_counters_move_and_survive_crashes_and_reloads() {
    require_module("prometheus_client");
    let mut server = obs_server(&[
        "--processes",
        "2",
        "--metrics",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
    ]);
    let port = endpoint_port(&server, "Metrics");
    let stats = endpoint(&server, "Stats");
    let kids = server.wait_for_children(2, PROMPT);
    let m0 = scrape(port);
    assert_eq!(m0.requests("2xx"), 0.0);

    const M: f64 = 7.0;
    for _ in 0..M as usize {
        get_ok(&server, "/", 200);
    }
    eventually("2xx grows by M", PROMPT, || {
        let m = scrape(port);
        match m.requests("2xx") {
            M => Ok(()),
            n => Err(format!("2xx {n}")),
        }
    });
    get_ok(&server, "/raise", 500);
    eventually("5xx and exceptions grow", PROMPT, || {
        let m = scrape(port);
        match (m.requests("5xx"), m.get("rwsgi_exceptions_total")) {
            (1.0, 1.0) => Ok(()),
            other => Err(format!("(5xx, exceptions) = {other:?}")),
        }
    });

    // A crash: counted, replaced, and the dead worker's requests kept.
    let doc = raw_stats(&stats);
    let victim_id = (0..2)
        .find(|i| doc.int(&format!("workers.{i}.pid")) == i64::from(kids[0]))
        .map(|i| doc.int(&format!("workers.{i}.id")))
        .expect("the victim in the stats");
    send_signal(kids[0], "KILL");
    eventually("a crash respawn", PROMPT, || {
        let m = scrape(port);
        match (m.respawns("crash"), m.get("rwsgi_workers{state=\"idle\"}")) {
            (1.0, 2.0) => Ok(()),
            other => Err(format!("(crash respawns, idle workers) = {other:?}")),
        }
    });
    let m = scrape(port);
    assert_eq!(
        (
            m.requests("2xx"),
            m.requests("5xx"),
            m.get("rwsgi_exceptions_total")
        ),
        (M, 1.0, 1.0),
        "totals after a crash"
    );
    assert_eq!(m.get("rwsgi_request_duration_seconds_count"), M + 1.0);
    let doc = raw_stats(&stats);
    for i in 0..2 {
        let (id, pid) = (
            doc.int(&format!("workers.{i}.id")),
            doc.int(&format!("workers.{i}.pid")),
        );
        let respawns = doc.int(&format!("workers.{i}.respawn_count"));
        if id == victim_id {
            assert_ne!(
                pid,
                i64::from(kids[0]),
                "the dead worker is gone from the stats"
            );
            assert_eq!(respawns, 2, "worker {id} was spawned twice");
        } else {
            assert_eq!(respawns, 1, "worker {id} was spawned once");
        }
    }

    // A reload replaces both workers.
    server.signal("HUP");
    server.wait_for_log("reload complete", PROMPT);
    let m = eventually("reload respawns", PROMPT, || {
        let m = scrape(port);
        match m.respawns("reload") {
            2.0 => Ok(m),
            n => Err(format!("reload respawns {n}")),
        }
    });
    assert_eq!(m.respawns("crash"), 1.0);
    assert_eq!(
        (
            m.requests("2xx"),
            m.requests("5xx"),
            m.get("rwsgi_exceptions_total")
        ),
        (M, 1.0, 1.0),
        "totals after a reload"
    );
    for _ in 0..3 {
        get_ok(&server, "/", 200);
    }
    eventually("new workers add to the totals", PROMPT, || {
        match scrape(port).requests("2xx") {
            n if n == M + 3.0 => Ok(()),
            n => Err(format!("2xx {n}")),
        }
    });
}

#[test]
fn metrics_count_max_requests_recycling() {
    require_module("prometheus_client");
    let mut server = obs_server(&[
        "--processes",
        "1",
        "--metrics",
        "127.0.0.1:0",
        "--max-requests",
        "5",
        "--min-worker-lifetime",
        "0",
    ]);
    let port = endpoint_port(&server, "Metrics");
    const N: usize = 12;
    for _ in 0..N {
        get_ok(&server, "/", 200);
    }
    server.wait_for_log("stopped", PROMPT);
    let m = eventually("max-requests respawns and all requests", PROMPT, || {
        let m = scrape(port);
        match (m.respawns("max-requests"), m.requests("2xx")) {
            (r, n) if r >= 1.0 && n == N as f64 => Ok(m),
            other => Err(format!("(max-requests respawns, 2xx) = {other:?}")),
        }
    });
    let live: f64 = m
        .with_prefix("rwsgi_worker_requests_total{")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert!(
        live < N as f64,
        "a worker retired, so live workers served fewer than {N} ({live}); the total keeps them"
    );
    assert_eq!(m.respawns("crash"), 0.0);
}

#[test]
fn metrics_count_harakiri() {
    require_module("prometheus_client");
    let dir = TempDir::new("harakiri");
    let never = dir.path().join("never-created");
    let mut server = obs_server(&[
        "--processes",
        "1",
        "--metrics",
        "127.0.0.1:0",
        "--harakiri",
        "1",
    ]);
    let port = endpoint_port(&server, "Metrics");
    let mut c = server.connect();
    let target = format!("/block?until={}", never.display());
    c.send(&request("GET", &target, &[], b""));
    server.wait_for_log("harakiri:", PROMPT);
    // Nothing of its response had gone out: harakiri answers 504.
    let r = c.read_response(false).expect("the 504 of harakiri");
    assert_eq!(r.status, 504);
    eventually("harakiri counted", PROMPT, || {
        let m = scrape(port);
        match (
            m.get("rwsgi_harakiri_total"),
            m.respawns("harakiri"),
            m.respawns("crash"),
            m.get("rwsgi_workers{state=\"idle\"}"),
        ) {
            (1.0, 1.0, 0.0, 1.0) => Ok(()),
            other => Err(format!(
                "(harakiri, respawns harakiri, crash, idle) = {other:?}"
            )),
        }
    });
    get_ok(&server, "/", 200);
}

#[test]
fn clients_leaving_mid_response_are_not_errors() {
    require_module("prometheus_client");
    let server = obs_server(&["--processes", "1", "--metrics", "127.0.0.1:0"]);
    let port = endpoint_port(&server, "Metrics");
    let worker = server.wait_for_children(1, PROMPT);
    const ROUNDS: usize = 20;
    for _ in 0..ROUNDS {
        let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        s.set_read_timeout(Some(PROMPT)).unwrap();
        // 20 MiB in 1 KiB chunks: far more than the socket buffers hold.
        s.write_all(&request("GET", "/stream?n=20480", &[], b""))
            .unwrap();
        let mut first = [0u8; 256];
        let n = s.read(&mut first).expect("the first bytes of the stream");
        assert!(
            first[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&first[..n])
        );
        drop(s); // unread data: the kernel resets the connection
    }
    get_ok(&server, "/", 200);
    let m = eventually("every request counted", PROMPT, || {
        let m = scrape(port);
        match m.requests("2xx") {
            n if n == (ROUNDS + 1) as f64 => Ok(m),
            n => Err(format!("2xx {n}")),
        }
    });
    assert_eq!(
        m.get("rwsgi_exceptions_total"),
        0.0,
        "a client leaving is no app error"
    );
    assert_eq!(server.children(), worker, "the worker survived");
    let log = server.log();
    let noisy: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    assert!(
        noisy.is_empty(),
        "client disconnects logged as problems: {noisy:#?}"
    );
}
