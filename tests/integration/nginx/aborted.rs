//! A streamed response that raises after its first chunk, behind nginx
//! (issue 12, item 11): rwsgi resets the uwsgi connection, so nginx sees an
//! upstream error and cuts its client's connection instead of ending the
//! chunked reply as if it were complete.

use std::io::{ErrorKind, Read};
use std::os::unix::fs::PermissionsExt;

use super::{test_server_block, uwsgi_addrs, Nginx};
use crate::harness::{app, Server, TempDir, PROMPT};
use crate::http::request;

#[test]
fn a_stream_that_raises_midway_is_cut_behind_nginx() {
    let dir = TempDir::new("nginx-abort");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start_exact(&[
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hardening.py"),
    ]);
    let upstream = uwsgi_addrs(&server)
        .into_iter()
        .next()
        .expect("a uwsgi listener")
        .nginx_upstream();
    let nginx = Nginx::start(dir.path(), |port, params| {
        test_server_block(port, &upstream, params)
    });
    let mut s = std::net::TcpStream::connect(("127.0.0.1", nginx.port)).unwrap();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    std::io::Write::write_all(&mut s, &request("GET", "/stream-raise", &[], b"")).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading from nginx: {e}\n{}", nginx.logs()),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.ends_with("\r\n0\r\n\r\n"),
        "nginx ended the cut response as complete: {text:?}\n{}",
        nginx.logs()
    );
    let logs = nginx.logs();
    assert!(
        logs.contains("reset by peer") || logs.contains("upstream prematurely closed"),
        "nginx logged no upstream error:\n{logs}"
    );
}
