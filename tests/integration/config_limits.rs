//! Numbers that would overflow later are refused when the configuration is
//! read, naming the option, its maximum and the file; the configuration file
//! itself is capped (issue 12, correctness 13).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{app, Server, TempDir, PROMPT};

/// `rwsgi --check-config` with `args`: exit code and stderr.
fn check(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rwsgi"))
        .args(["--http", "127.0.0.1:0", "--module", "m", "--check-config"])
        .args(args)
        .output()
        .expect("run rwsgi");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn durations_past_their_maximum_are_refused_with_the_maximum() {
    let huge = u64::MAX.to_string();
    for flag in [
        "--http-timeout",
        "--keepalive-timeout",
        "--shutdown-timeout",
        "--shutdown-delay",
        "--harakiri",
        "--min-worker-lifetime",
    ] {
        let (code, err) = check(&[flag, &huge]);
        assert_eq!(code, Some(2), "{flag}: {err}");
        assert!(
            err.contains(&format!(
                "{flag} {huge} is more than the maximum, 86400 seconds"
            )),
            "{flag}: {err}"
        );
    }
    let (code, err) = check(&["--max-requests-jitter", &huge]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--max-requests-jitter"), "{err}");
    // At the maximum, the server serves and a TERM still ends it promptly.
    let mut server = Server::start(&[
        "--wsgi-file",
        &app("hello.py"),
        "--http-timeout",
        "86400",
        "--keepalive-timeout",
        "86400",
        "--shutdown-timeout",
        "86400",
    ]);
    assert_eq!(server.connect().get("/").status, 200);
    server.signal("TERM");
    assert!(server.wait_exit(PROMPT).success(), "{}", server.log_text());
}

#[test]
fn the_file_is_named_and_its_size_capped() {
    let dir = TempDir::new("cfg-limits");
    let file = dir.file("rwsgi.toml");
    std::fs::write(&file, "[limits]\nhttp-timeout = 9223372036854775807\n").unwrap();
    let (code, err) = check(&["--config", &file]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--http-timeout 9223372036854775807 is more than the maximum, 86400")
            && err.contains(&format!("(set by {file}:2)")),
        "{err}"
    );

    let started = Instant::now();
    let (code, err) = check(&["--config", "/dev/zero"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--config /dev/zero: larger than 1048576 bytes (1 MiB)"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    // A key of 500 KB (under the cap) is not echoed back whole.
    let big = dir.file("big.toml");
    std::fs::write(&big, format!("[server]\n{} = 1\n", "k".repeat(500_000))).unwrap();
    let (code, err) = check(&["--config", &big]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.len() < 4000 && err.contains("unknown key"),
        "{} bytes",
        err.len()
    );
}
