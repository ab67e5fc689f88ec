//! A master killed with SIGKILL: its workers let go of the listeners at
//! once, so a new master can bind the same port while an orphan still
//! finishes its request.

use super::*;

/// True when a listener can be bound to 127.0.0.1:`port` (std sets
/// SO_REUSEADDR, as rwsgi does).
fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[test]
fn sigkilled_master_workers_release_the_port_so_a_new_master_starts() {
    let _x = exclusive();
    let mut first = Server::start(&["--wsgi-file", &app("sup_app.py"), "--processes", "2"]);
    let port = first.port();
    let mut busy = Connection::connect(port).expect("connect");
    busy.send(get_request("/sleep?ms=30000", true).as_bytes())
        .expect("send");
    first.wait_for_log("sleep-begin", PROMPT);
    first.signal("KILL");
    first.wait_exit(PROMPT);
    let killed_at = Instant::now();
    let deadline = killed_at + Duration::from_secs(5);
    while !port_is_free(port) {
        assert!(
            Instant::now() < deadline,
            "port {port} still held {:?} after the master was killed; log:\n{}",
            killed_at.elapsed(),
            first.log_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let released = killed_at.elapsed();
    let addr = format!("127.0.0.1:{port}");
    let second = Server::start_exact(&["--http", &addr, "--wsgi-file", &app("sup_app.py")]);
    eprintln!("port released {released:?} after SIGKILL of the master");
    let reply = get_once(port, "/").expect("the new master's worker answers");
    let orphans: Vec<u32> = first
        .logged_worker_pids()
        .into_iter()
        .filter(|&p| is_rwsgi_process(p))
        .collect();
    assert!(
        !orphans.is_empty(),
        "the orphan did not keep finishing its request"
    );
    assert!(
        second
            .logged_worker_pids()
            .contains(&reply.pid.expect("X-Pid")),
        "answered by {:?}, not the new master's worker",
        reply.pid
    );
}
