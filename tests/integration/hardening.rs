//! The worker's I/O side under abuse (issue 12): running out of
//! descriptors, body floods and dripped heads, children the app forks,
//! responses the app cannot complete, and invalid app headers. The app is
//! `etc/apps/hardening.py`.

mod aborted;
mod fds;
mod forks;
mod memory;

use std::process::Command;

use crate::harness::{app, Server};

/// rwsgi with one worker serving hardening.py, plus `args`.
fn start(args: &[&str]) -> Server {
    let a = app("hardening.py");
    let mut all = vec!["--wsgi-file", a.as_str(), "--processes", "1"];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// The same through `sh -c`, with `shell` run before rwsgi is exec'ed
/// (a lower descriptor limit, say) and `env` set.
fn start_via_shell(shell: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
    let a = app("hardening.py");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{shell} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_rwsgi"))
        .args([
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &a,
            "--processes",
            "1",
        ])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::start_command(cmd)
}

/// The only worker's pid.
fn worker(server: &Server) -> u32 {
    let kids = server.wait_for_children(1, crate::harness::PROMPT);
    kids[0]
}
