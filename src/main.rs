//! rwsgi: a thin shell over [`rwsgi::start::run`]; exit codes are rwsgi(1)'s.

use std::process::ExitCode;

fn main() -> ExitCode {
    rwsgi::start::run().unwrap_or_else(|e| e.report())
}
