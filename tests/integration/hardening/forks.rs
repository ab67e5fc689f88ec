//! Children the app forks (issue 12, item 10): they do not keep the
//! worker's sockets (a `Connection: close` response ends at once), those
//! nobody waits for are reaped, and a status the app waits for is its own.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::harness::{send_signal, PROMPT};

/// Kills the forked child however the test ends.
struct Child(u32);

impl Drop for Child {
    fn drop(&mut self) {
        send_signal(self.0, "KILL");
    }
}

fn state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .next()?
            .to_string(),
    )
}

/// The TCP sockets (the worker's listener and clients) `pid` holds.
fn tcp_sockets_of(pid: u32) -> Vec<String> {
    let tcp: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(9).map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|l| l.to_string_lossy().into_owned())
                .filter(|l| {
                    l.strip_prefix("socket:[")
                        .and_then(|r| r.strip_suffix(']'))
                        .is_some_and(|inode| tcp.iter().any(|t| t == inode))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_forked_child_keeps_no_socket_so_the_response_ends_at_once() {
    forked_child_keeps_no_socket(&[]);
}

#[test]
fn a_child_forked_by_an_app_thread_keeps_no_socket_either() {
    forked_child_keeps_no_socket(&["--threads", "4"]);
}

fn forked_child_keeps_no_socket(args: &[&str]) {
    let server = super::start(args);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let started = Instant::now();
    s.write_all(b"GET /fork-sleep HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let closed = s.read_to_end(&mut got).is_ok();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&got).into_owned();
    // Killed however the test ends.
    let child = Child(
        text.rsplit("\r\n\r\n")
            .next()
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {text:?}")),
    );
    assert!(
        closed && took < Duration::from_secs(10),
        "no EOF within {took:?}: {text:?}"
    );
    let alive = state(child.0);
    assert!(
        matches!(alive.as_deref(), Some("S" | "R")),
        "the child should still sleep: {alive:?}"
    );
    let held = tcp_sockets_of(child.0);
    assert!(held.is_empty(), "the forked child holds {held:?}");
}

#[test]
fn a_child_nobody_waits_for_is_reaped_and_waited_statuses_are_kept() {
    let server = super::start(&[]);
    let r = server.connect().get("/fork-exit");
    assert_eq!(r.status, 200);
    let child = Child(r.text().parse().expect("a pid"));
    // A zombie first, gone within the grace (10 s) plus a sweep.
    let deadline = Instant::now() + Duration::from_secs(10) + PROMPT;
    while let Some(s) = state(child.0) {
        assert!(
            Instant::now() < deadline,
            "child {} still {s} after the grace",
            child.0
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A child the app waits for keeps its own exit status.
    let r = server.connect().get("/popen-wait");
    assert_eq!((r.status, r.text().as_str()), (200, "3"));
}
