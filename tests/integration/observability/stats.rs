//! The stats server: uWSGI's JSON (raw, unix, HTTP), what uwsgitop shows,
//! the kernel's accept queues, and the master endpoints' robustness.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::{
    endpoint, endpoint_get, endpoint_port, eventually, get_ok, obs_server, own_ids, python,
    raw_stats, require_module, scrape, sorted, unix_now, venv, Json,
};
use crate::harness::{project_dir, send_signal, TempDir, PROMPT};
use crate::http::{request, Client};

const WORKER_FIELDS: [&str; 13] = [
    "id",
    "pid",
    "requests",
    "delta_requests",
    "exceptions",
    "status",
    "rss",
    "vsz",
    "running_time",
    "last_spawn",
    "respawn_count",
    "tx",
    "avg_rt",
];

#[test]
fn raw_stats_document_has_uwsgi_fields_and_counts_requests() {
    let started = unix_now();
    let server = obs_server(&[
        "--processes",
        "2",
        "--stats",
        "127.0.0.1:0",
        "--listen",
        "77",
    ]);
    let addr = endpoint(&server, "Stats");
    let kids = server.wait_for_children(2, PROMPT);
    let doc = raw_stats(&addr);

    assert!(doc.is_object(""), "the document is not a JSON object");
    assert_eq!(doc.string("version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(doc.int("listen_queue"), 0);
    assert_eq!(doc.int("load"), 0);
    assert_eq!(
        doc.int("pid"),
        i64::from(server.pid()),
        "pid is the master's"
    );
    let (uid, gid) = own_ids();
    assert_eq!((doc.int("uid"), doc.int("gid")), (uid, gid));
    assert_eq!(doc.string("cwd"), project_dir().to_string_lossy());

    assert_eq!(doc.len("sockets"), 1);
    assert_eq!(
        doc.string("sockets.0.name"),
        format!("127.0.0.1:{}", server.port())
    );
    assert_eq!(doc.string("sockets.0.proto"), "http");
    assert_eq!(doc.int("sockets.0.queue"), 0);
    assert_eq!(doc.int("sockets.0.max_queue"), 77, "max_queue is --listen");

    assert_eq!(doc.len("workers"), 2);
    let pids: Vec<i64> = (0..2)
        .map(|i| doc.int(&format!("workers.{i}.pid")))
        .collect();
    assert_eq!(
        sorted(pids),
        sorted(kids.iter().map(|&p| i64::from(p)).collect()),
        "worker pids are the master's children"
    );
    let ids: Vec<i64> = (0..2)
        .map(|i| doc.int(&format!("workers.{i}.id")))
        .collect();
    assert_eq!(sorted(ids), vec![1, 2]);
    for i in 0..2 {
        let w = |f: &str| format!("workers.{i}.{f}");
        for f in WORKER_FIELDS {
            doc.raw(&w(f));
        }
        assert_eq!(doc.string(&w("status")), "idle");
        assert_eq!(doc.int(&w("requests")), 0);
        assert_eq!(doc.int(&w("exceptions")), 0);
        assert_eq!(doc.int(&w("tx")), 0);
        assert_eq!(doc.int(&w("respawn_count")), 1);
        let spawn = doc.int(&w("last_spawn"));
        assert!(
            (started - 5..=unix_now() + 5).contains(&spawn),
            "last_spawn {spawn} is not the unix time of the spawn (test started at {started})"
        );
    }

    const N: i64 = 10;
    for _ in 0..N {
        get_ok(&server, "/", 200);
    }
    // delta_requests: what each snapshot adds since the previous one.
    let mut deltas = doc.workers_sum("delta_requests");
    let doc = eventually("stats show N requests", PROMPT, || {
        let d = raw_stats(&addr);
        deltas += d.workers_sum("delta_requests");
        match d.workers_sum("requests") {
            N => Ok(d),
            n => Err(format!("{n} requests")),
        }
    });
    assert_eq!(deltas, N, "delta_requests over all snapshots add up to N");
    assert_eq!(doc.workers_sum("tx"), N * 13, "tx: 13 body bytes per hello");
    for i in 0..2 {
        let w = |f: &str| format!("workers.{i}.{f}");
        let requests = doc.int(&w("requests"));
        if requests == 0 {
            continue;
        }
        let running = doc.int(&w("running_time"));
        assert!(running > 0, "worker {i} served {requests} in {running} us");
        assert_eq!(doc.int(&w("avg_rt")), running / requests, "avg_rt");
        assert!(
            doc.int(&w("rss")) > 0,
            "rss of a worker that served requests"
        );
        assert!(
            doc.int(&w("vsz")) > 0,
            "vsz of a worker that served requests"
        );
    }
    let again = raw_stats(&addr);
    assert_eq!(again.workers_sum("delta_requests"), 0, "no requests since");

    get_ok(&server, "/raise", 500);
    let doc = eventually("stats count the exception", PROMPT, || {
        let d = raw_stats(&addr);
        match (d.workers_sum("requests"), d.workers_sum("exceptions")) {
            (r, 1) if r == N + 1 => Ok(d),
            other => Err(format!("(requests, exceptions) = {other:?}")),
        }
    });
    assert_eq!(doc.workers_sum("exceptions"), 1);
}

#[test]
fn raw_stats_on_a_unix_socket_and_unix_listener_queues() {
    let dir = TempDir::new("obs-unix-stats");
    let stats_path = dir.file("stats.sock");
    let app_path = dir.file("app.sock");
    let server = obs_server(&[
        "--processes",
        "1",
        "--stats",
        &stats_path,
        "--socket",
        &app_path,
        "--listen",
        "77",
    ]);
    let addr = endpoint(&server, "Stats");
    assert_eq!(addr, format!("unix:{stats_path}"));
    let kids = server.wait_for_children(1, PROMPT);
    get_ok(&server, "/", 200);
    let doc = eventually("the request in unix-socket stats", PROMPT, || {
        let d = raw_stats(&addr);
        match d.workers_sum("requests") {
            1 => Ok(d),
            n => Err(format!("{n} requests")),
        }
    });
    assert_eq!(doc.int("pid"), i64::from(server.pid()));
    assert_eq!(doc.len("workers"), 1);
    assert_eq!(doc.int("workers.0.pid"), i64::from(kids[0]));
    assert_eq!(doc.int("workers.0.tx"), 13);
    // Both listeners, each with its kernel accept queue and backlog.
    assert_eq!(doc.len("sockets"), 2);
    let socket = |name: &str| {
        (0..2)
            .find(|i| doc.string(&format!("sockets.{i}.name")) == name)
            .unwrap_or_else(|| panic!("no socket {name:?} in the stats"))
    };
    let http = socket(&format!("127.0.0.1:{}", server.port()));
    let unix = socket(&app_path);
    for (i, proto) in [(http, "http"), (unix, "uwsgi")] {
        assert_eq!(doc.string(&format!("sockets.{i}.proto")), proto);
        assert_eq!(doc.int(&format!("sockets.{i}.queue")), 0);
        assert_eq!(doc.int(&format!("sockets.{i}.max_queue")), 77, "{proto}");
    }
}

/// uwsgitop and Prometheus show each worker's memory; a worker that has not
/// served a request yet still uses memory.
#[test]
fn stats_show_the_memory_of_workers_before_their_first_request() {
    let server = obs_server(&[
        "--processes",
        "2",
        "--stats",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    require_module("prometheus_client");
    let addr = endpoint(&server, "Stats");
    let metrics = endpoint_port(&server, "Metrics");
    server.wait_for_children(2, PROMPT);
    eventually(
        "every worker's rss and vsz > 0 (no request served)",
        Duration::from_secs(5),
        || {
            let d = raw_stats(&addr);
            let mem: Vec<(i64, i64)> = (0..d.len("workers"))
                .map(|i| {
                    (
                        d.int(&format!("workers.{i}.rss")),
                        d.int(&format!("workers.{i}.vsz")),
                    )
                })
                .collect();
            if mem.len() == 2 && mem.iter().all(|&(r, v)| r > 0 && v > 0) {
                Ok(())
            } else {
                Err(format!("(rss, vsz) per worker: {mem:?}"))
            }
        },
    );
    let m = scrape(metrics);
    let rss = m.with_prefix("rwsgi_worker_rss_bytes{");
    assert_eq!(rss.len(), 2, "{rss:?}");
    assert!(rss.iter().all(|&(_, v)| v > 0.0), "{rss:?}");
}

#[test]
fn listen_queue_counts_connections_waiting_for_a_busy_worker() {
    require_module("prometheus_client");
    let dir = TempDir::new("listen-queue");
    let release = dir.path().join("release");
    let server = obs_server(&[
        "--processes",
        "1",
        "--stats",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let addr = endpoint(&server, "Stats");
    let metrics = endpoint_port(&server, "Metrics");
    server.wait_for_children(1, PROMPT);

    // Occupy the only worker inside the app call: it accepts nothing then.
    let mut blocker = server.connect();
    let target = format!("/block?until={}", release.display());
    blocker.send(&request("GET", &target, &[], b""));
    eventually("the worker is busy", PROMPT, || {
        let d = raw_stats(&addr);
        match (d.int("load"), d.string("workers.0.status")) {
            (1, s) if s == "busy" => Ok(()),
            other => Err(format!("(load, status) = {other:?}")),
        }
    });

    // The kernel completes each handshake itself and queues the connection
    // until accept(2); TCP_INFO on the listener (tcpi_unacked) counts exactly
    // those established-but-unaccepted connections, so with the only worker
    // inside the app call the queue holds our K clients and nothing else.
    const K: i64 = 5;
    let mut waiting: Vec<Client> = (0..K).map(|_| server.connect()).collect();
    for c in &mut waiting {
        c.send(&request("GET", "/", &[], b""));
    }
    let doc = eventually("listen_queue reaches K", PROMPT, || {
        let d = raw_stats(&addr);
        match d.int("listen_queue") {
            q if q >= K => Ok(d),
            q => Err(format!("listen_queue {q}")),
        }
    });
    let q = doc.int("listen_queue");
    assert!(q <= K + 1, "listen_queue {q}: only {K} clients are waiting");
    assert_eq!(doc.int("sockets.0.queue"), q, "the socket's queue");
    let m = scrape(metrics);
    let key = format!(
        "rwsgi_listen_queue{{socket=\"127.0.0.1:{}\"}}",
        server.port()
    );
    assert_eq!(m.get(&key), K as f64, "the metric agrees");
    assert_eq!(m.get("rwsgi_workers{state=\"busy\"}"), 1.0);

    std::fs::write(&release, b"").unwrap();
    let r = blocker.read_response(false).expect("the blocked response");
    assert_eq!((r.status, r.text().as_str()), (200, "released"));
    for c in &mut waiting {
        let r = c.read_response(false).expect("a queued client's response");
        assert_eq!((r.status, r.text().as_str()), (200, "Hello, World!"));
    }
    eventually("listen_queue back to 0", PROMPT, || {
        let d = raw_stats(&addr);
        match (
            d.int("listen_queue"),
            d.int("sockets.0.queue"),
            d.int("load"),
        ) {
            (0, 0, 0) => Ok(()),
            other => Err(format!("(listen_queue, socket queue, load) = {other:?}")),
        }
    });
}

/// Runs a program in a pseudo-terminal (200x50, TERM=xterm) until its
/// output contains every needle or the time is up, then kills it; prints
/// everything it wrote.
const RUN_IN_PTY: &str = r#"
import fcntl, os, pty, select, signal, struct, sys, termios, time
prog, addr, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
needles = [n.encode() for n in sys.argv[4:]]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    os.environ["TERM"] = "xterm"
    os.execv(prog, [prog, addr])
out = b""
deadline = time.monotonic() + secs
while time.monotonic() < deadline and not all(n in out for n in needles):
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
"#;

#[test]
fn uwsgitop_shows_the_live_workers() {
    let uwsgitop = venv().join("bin/uwsgitop");
    assert!(
        uwsgitop.exists(),
        "no {}: run scripts/test (it installs uwsgitop and prometheus_client into .venv)",
        uwsgitop.display()
    );
    let server = obs_server(&["--processes", "2", "--stats", "127.0.0.1:0"]);
    let addr = endpoint(&server, "Stats");
    let kids = server.wait_for_children(2, PROMPT);
    for _ in 0..7 {
        get_ok(&server, "/", 200);
    }
    eventually("stats count 7 requests", PROMPT, || {
        match raw_stats(&addr).workers_sum("requests") {
            7 => Ok(()),
            n => Err(format!("{n}")),
        }
    });
    let mut needles = vec![
        "WID".to_string(),
        "PID".to_string(),
        "REQ".to_string(),
        "req: 7 ".to_string(),
        format!("masterpid: {}", server.pid()),
    ];
    needles.extend(kids.iter().map(|p| p.to_string()));
    let mut args = vec![uwsgitop.to_str().unwrap(), addr.as_str(), "10"];
    args.extend(needles.iter().map(String::as_str));
    let screen = python(RUN_IN_PTY, &args, b"");
    let visible = screen.replace('\x1b', "^[");
    for n in &needles {
        assert!(
            screen.contains(n.as_str()),
            "uwsgitop's screen lacks {n:?}:\n{visible}"
        );
    }
    assert!(
        !screen.contains("Traceback"),
        "uwsgitop crashed:\n{visible}"
    );
}

#[test]
fn stats_http_serves_the_same_document_over_http() {
    let raw = obs_server(&["--processes", "2", "--stats", "127.0.0.1:0"]);
    let http = obs_server(&["--processes", "2", "--stats", "127.0.0.1:0", "--stats-http"]);
    let port = endpoint_port(&http, "StatsHttp");
    let kids = http.wait_for_children(2, PROMPT);
    raw.wait_for_children(2, PROMPT);

    let r = endpoint_get(port, "/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = Json::parse(&r.text());
    assert_eq!(doc.int("pid"), i64::from(http.pid()));
    let pids: Vec<i64> = (0..doc.len("workers"))
        .map(|i| doc.int(&format!("workers.{i}.pid")))
        .collect();
    assert_eq!(
        sorted(pids),
        sorted(kids.iter().map(|&p| i64::from(p)).collect())
    );
    let raw_doc = raw_stats(&endpoint(&raw, "Stats"));
    assert_eq!(
        doc.keys(),
        raw_doc.keys(),
        "the HTTP document has the raw document's fields"
    );
}

/// A scraper that sends its request and then half-closes its side (as
/// `nc -N` or a shell health check does) still gets the answer.
#[test]
fn endpoints_answer_a_request_followed_by_a_half_close() {
    let server = obs_server(&[
        "--processes",
        "1",
        "--metrics",
        "127.0.0.1:0",
        "--stats",
        "127.0.0.1:0",
        "--stats-http",
    ]);
    // Whether the FIN is already there when the master reads varies: try
    // often enough that a server dropping such requests is caught.
    for kind in ["Metrics", "StatsHttp"] {
        let port = endpoint_port(&server, kind);
        for attempt in 1..=10 {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(PROMPT)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            assert!(
                out.starts_with(b"HTTP/1.1 200 "),
                "{kind}, attempt {attempt}: a complete request then FIN got {:?}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}

/// The endpoints live in the master's loop: clients that connect and send
/// nothing (or half a request) must not delay other scrapes or supervision,
/// and are dropped after a while.
#[test]
fn stalled_endpoint_clients_do_not_stall_the_master() {
    require_module("prometheus_client");
    let server = obs_server(&["--processes", "1", "--metrics", "127.0.0.1:0"]);
    let port = endpoint_port(&server, "Metrics");
    let kids = server.wait_for_children(1, PROMPT);
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut partial = TcpStream::connect(("127.0.0.1", port)).unwrap();
    partial.write_all(b"GET /metr").unwrap();
    idle.push(partial);

    let t = Instant::now();
    let m = scrape(port);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a scrape behind stalled clients took {:?}",
        t.elapsed()
    );
    assert_eq!(m.get("rwsgi_workers{state=\"idle\"}"), 1.0);
    send_signal(kids[0], "KILL");
    eventually("the crashed worker is replaced", PROMPT, || {
        let now = server.children();
        if now.len() == 1 && now != kids {
            Ok(())
        } else {
            Err(format!("children {now:?}"))
        }
    });
    for s in &mut idle {
        s.set_read_timeout(Some(PROMPT)).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a stalled client is closed without an answer");
    }
}
