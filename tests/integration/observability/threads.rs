//! `--threads`: each app thread in the stats JSON (uWSGI's `cores`, what
//! uwsgitop reads) and busy/idle threads and the queue wait in /metrics.

use super::{endpoint, endpoint_port, eventually, obs_server, raw_stats, require_module, scrape};
use crate::harness::{TempDir, PROMPT};
use crate::http::{request, Client};

#[test]
fn stats_and_metrics_show_each_app_thread() {
    require_module("prometheus_client");
    let dir = TempDir::new("threads-stats");
    let release = dir.path().join("release");
    let server = obs_server(&[
        "--processes",
        "1",
        "--threads",
        "3",
        "--stats",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = endpoint(&server, "Stats");
    let metrics = endpoint_port(&server, "Metrics");
    let target = format!("/block?until={}", release.display());
    let mut blocked = server.connect();
    blocked.send(&request("GET", &target, &[], b""));
    let busy_core = eventually("one core in a request", PROMPT, || {
        let s = raw_stats(&addr);
        let cores = s.len("workers.0.cores");
        if cores != 3 {
            return Err(format!("{cores} cores"));
        }
        (0..cores)
            .find(|i| s.int(&format!("workers.0.cores.{i}.in_request")) == 1)
            .map(|i| {
                (
                    i,
                    s.string(&format!("workers.0.cores.{i}.req_info.request")),
                )
            })
            .ok_or_else(|| "no core in a request".to_string())
    });
    assert_eq!(busy_core.1, format!("GET {target}"));
    let m = scrape(metrics);
    assert_eq!(m.get("rwsgi_threads{state=\"busy\"}"), 1.0);
    assert_eq!(m.get("rwsgi_threads{state=\"idle\"}"), 2.0);

    std::fs::write(&release, b"").unwrap();
    let r = blocked.read_response(false).expect("the blocked request");
    assert_eq!(r.text(), "released");
    let mut c: Client = server.connect();
    for _ in 0..4 {
        assert_eq!(c.get("/").status, 200);
    }
    eventually(
        "five requests over the cores, none in flight",
        PROMPT,
        || {
            let s = raw_stats(&addr);
            let done: i64 = (0..3)
                .map(|i| s.int(&format!("workers.0.cores.{i}.requests")))
                .sum();
            let busy: i64 = (0..3)
                .map(|i| s.int(&format!("workers.0.cores.{i}.in_request")))
                .sum();
            if done == 5 && busy == 0 {
                Ok(())
            } else {
                Err(format!("{done} requests, {busy} busy"))
            }
        },
    );
    let m = scrape(metrics);
    assert_eq!(m.get("rwsgi_threads{state=\"busy\"}"), 0.0);
    assert!(m.get("rwsgi_queue_wait_seconds_count") >= 5.0);
}
