//! Rendering tests for the stats JSON and the metrics.

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
