//! The errors a bad file, flag or value gets.

use super::*;

#[test]
fn config_file_mistakes_exit_2_with_the_place_and_the_fix() {
    let dir = TempDir::new("cfg-errors");
    let app_table = "[app]\nwsgi-file = \"etc/apps/hello.py\"\n";
    let server_table = "[server]\nhttp = \"127.0.0.1:0\"\n";
    // (name, text, the line the message must name (the first line starting
    // with this; "" for none), what else the message must say)
    let cases: Vec<(&str, String, &str, Vec<&str>)> = vec![
        (
            "unknown-key",
            format!("{app_table}{server_table}\n[workers]\nproceses = 3\n"),
            "proceses",
            vec![
                "unknown key \"proceses\" in [workers]",
                "did you mean \"processes\"?",
            ],
        ),
        (
            "wrong-type",
            format!("{app_table}{server_table}\n[workers]\nprocesses = \"3\"\n"),
            "processes",
            vec!["processes", "whole number", "not a string"],
        ),
        (
            "wrong-type-bool",
            format!("{app_table}{server_table}vacuum = \"yes\"\n"),
            "vacuum",
            vec!["vacuum", "true or false"],
        ),
        (
            "wrong-table",
            format!("{app_table}{server_table}processes = 3\n"),
            "processes",
            vec!["\"processes\" belongs in the [workers] table, not [server]"],
        ),
        (
            "top-level-key",
            format!("processes = 3\n{app_table}{server_table}"),
            "processes",
            vec!["processes", "[workers] processes = "],
        ),
        (
            "processes-zero",
            format!("{app_table}{server_table}\n[workers]\nprocesses = 0\n"),
            "processes",
            vec!["--processes must be at least 1"],
        ),
        (
            "threads-too-many",
            format!("{app_table}{server_table}\n[workers]\nthreads = 600\n"),
            "threads",
            vec!["--threads 600: use 1 to 512 app threads per worker"],
        ),
        (
            "port-too-big",
            format!("{app_table}[server]\nhttp = [\"127.0.0.1:70000\"]\n"),
            "http",
            vec!["70000", "65535"],
        ),
        (
            "missing-app",
            server_table.to_string(),
            "",
            vec!["no app given", "--module", "--wsgi-file"],
        ),
        (
            "uwsgi-master-key",
            format!("{app_table}{server_table}\n[workers]\nmaster = true\n"),
            "master",
            vec![
                "unknown key \"master\"",
                "what rwsgi always does",
                "--master",
            ],
        ),
        (
            "one-option-two-spellings",
            format!("{app_table}{server_table}\n[workers]\nmax_requests = 5\nmax-requests = 6\n"),
            "max-requests",
            vec!["sets max-requests, as", "max_requests", "keep one"],
        ),
        (
            "a-table-inside-another",
            format!("{server_table}{app_table}workers.processes = 0\n"),
            "workers.processes",
            vec!["[workers] inside [app]", "its own table, [workers]"],
        ),
        (
            "a-sub-table",
            format!("{app_table}{server_table}\n[workers.extra]\na = 1\n"),
            "[workers.extra]",
            vec!["[workers] extra is a table", "plain keys"],
        ),
        (
            "an-array-of-tables",
            format!("{app_table}\n[[server]]\nhttp = \"127.0.0.1:0\"\n"),
            "[[server]]",
            vec!["[[server]] is an array of tables", "[server]"],
        ),
        (
            "uwsgi-ini",
            "[uwsgi]\nhttp = :8000\nmodule = mysite.wsgi\n".to_string(),
            "http",
            vec!["not valid TOML", "uWSGI ini file", "rwsgi.toml(5)"],
        ),
    ];
    let mut wrong = Vec::new();
    for (name, text, marker, needles) in cases {
        let path = write_file(&dir, &format!("{name}.toml"), &text);
        wrong.extend(bad_file_message(&path, &text, marker, &needles));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));

    // A real start fails the same way, before serving anything.
    let path = dir.file("unknown-key.toml");
    let mut server = Server::spawn_command(rwsgi(&["--config", &path], &[]));
    let status = server.wait_exit(STARTUP);
    assert_eq!(status.code(), Some(2), "{}", server.log_text());
    assert!(
        server
            .log_text()
            .contains(&format!("{path}:7: unknown key")),
        "{}",
        server.log_text()
    );

    // A file that is not there.
    let missing = dir.file("nope.toml");
    let msg = check_fails(&["--config", &missing], &[]);
    assert!(msg.contains(&missing), "{msg}");
    let msg = check_fails(&[], &[("RWSGI_CONFIG", missing.as_str())]);
    assert!(msg.contains(&missing), "{msg}");
}

/// A unix socket, log file or pidfile in a directory that does not exist:
/// a start refuses it (exit 2) naming the directory; --check-config warns,
/// because a service manager may create it at start (RuntimeDirectory=).
#[test]
fn files_in_missing_directories_are_refused_naming_the_directory() {
    let dir = TempDir::new("cfg-nodir");
    let missing = dir.path().join("missing");
    let inside = |name: &str| missing.join(name).display().to_string();
    let hello = "etc/apps/hello.py";
    for (flag, args) in [
        ("--socket", vec!["--socket".to_string(), inside("app.sock")]),
        ("--http", vec!["--http".to_string(), inside("http.sock")]),
        (
            "--logto",
            vec![
                "--http".into(),
                "127.0.0.1:0".into(),
                "--logto".into(),
                inside("x.log"),
            ],
        ),
        (
            "--pidfile",
            vec![
                "--http".into(),
                "127.0.0.1:0".into(),
                "--pidfile".into(),
                inside("x.pid"),
            ],
        ),
        (
            "--stats",
            vec![
                "--http".into(),
                "127.0.0.1:0".into(),
                "--stats".into(),
                inside("s.sock"),
            ],
        ),
    ] {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["--wsgi-file", hello]);
        let want = format!("directory {} does not exist", missing.display());
        let started = run(&all, &[]);
        assert_eq!(started.code, Some(2), "{flag}: {}", started.show());
        assert!(
            started.stderr.contains(flag) && started.stderr.contains(&want),
            "{flag}: {}",
            started.show()
        );
        all.push("--check-config");
        let checked = run(&all, &[]);
        assert_eq!(checked.code, Some(0), "{flag}: {}", checked.show());
        assert!(
            checked.stderr.contains("warning") && checked.stderr.contains(&want),
            "{flag}: {}",
            checked.show()
        );
    }
}

/// Flags from uWSGI or Gunicorn that rwsgi does not have get the rwsgi way
/// to do the same, not clap's nearest spelling; Gunicorn's `-w 4` (uWSGI's
/// and rwsgi's -w is --module) is caught too.
#[test]
fn foreign_flags_get_the_rwsgi_way() {
    let hello = "etc/apps/hello.py";
    for (args, needle) in [
        (vec!["--cheaper", "2"], "SIGTTIN and SIGTTOU"),
        (vec!["--graceful-timeout=5"], "--shutdown-timeout"),
        (vec!["--py-autoreload", "1"], "kill -HUP"),
        (vec!["--max-worker-lifetime", "60"], "--max-requests"),
    ] {
        let mut all = vec!["--http", "127.0.0.1:0", "--wsgi-file", hello];
        all.extend(args.iter().copied());
        let msg = check_fails(&all, &[]);
        assert!(
            msg.contains("is not an rwsgi option") && msg.contains(needle),
            "{args:?}: {msg}"
        );
    }
    let msg = check_fails(&["--http", "127.0.0.1:0", "-w", "4"], &[]);
    assert!(msg.contains("--processes 4"), "{msg}");
}

/// Checks `--check-config` on the bad file `path`: exit code 2, a message
/// naming `path` and the first line of `text` starting with `marker` (none
/// if empty), and every needle. Returns what is wrong.
fn bad_file_message(path: &str, text: &str, marker: &str, needles: &[&str]) -> Option<String> {
    let ran = run(&["--config", path, "--check-config"], &[]);
    let msg = &ran.stderr;
    let mut missing: Vec<String> = needles
        .iter()
        .filter(|n| !msg.contains(*n))
        .map(|n| format!("{n:?}"))
        .collect();
    if !marker.is_empty() {
        let line = text.lines().position(|l| l.starts_with(marker)).unwrap() + 1;
        let place = format!("{path}:{line}");
        if !msg.contains(&place) {
            missing.push(format!("the place {place}"));
        }
    }
    if ran.code != Some(2) {
        missing.push("exit code 2".into());
    }
    (!missing.is_empty()).then(|| {
        format!(
            "{path}: the error lacks {}:\n{}\nfile:\n{text}",
            missing.join(", "),
            ran.show()
        )
    })
}

#[test]
fn invalid_toml_is_reported_at_file_and_line() {
    // Like every other mistake in the file: `FILE:LINE: what is wrong`, so
    // editors and people find the place the same way.
    let dir = TempDir::new("cfg-syntax");
    let text = "[app]\nwsgi-file = \"etc/apps/hello.py\"\n[server\nhttp = \"127.0.0.1:0\"\n";
    let path = write_file(&dir, "syntax.toml", text);
    if let Some(wrong) = bad_file_message(&path, text, "[server", &["TOML", "]"]) {
        panic!("{wrong}");
    }
}

#[test]
fn values_the_flag_parser_rejects_still_name_their_source() {
    let dir = TempDir::new("cfg-badvalue");
    let text = "[app]\nwsgi-file = \"etc/apps/hello.py\"\n\n[server]\nhttp = \"127.0.0.1:0\"\n\
                listen = 99999999999\n";
    let path = write_file(&dir, "listen.toml", text);
    let mut wrong = Vec::new();
    wrong.extend(bad_file_message(&path, text, "listen", &["listen"]));

    let msg = check_fails(
        &["--http", "127.0.0.1:0", "--wsgi-file", "etc/apps/hello.py"],
        &[("RWSGI_PROCESSES", "many")],
    );
    if !msg.contains("RWSGI_PROCESSES") {
        wrong.push(format!(
            "RWSGI_PROCESSES=many: the message does not name the variable:\n{msg}"
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn toml_octal_literals_mean_what_they_say() {
    // `umask = 0o077` is the number 63 to TOML. rwsgi may refuse it (and say
    // to write "077") or take it as 0o077, but never as some other mask.
    let dir = TempDir::new("cfg-octal");
    let text = "[app]\nwsgi-file = \"etc/apps/hello.py\"\n\n[server]\nhttp = \"127.0.0.1:0\"\n\
                umask = 0o077\nchmod-socket = 0o660\n";
    let path = write_file(&dir, "octal.toml", text);
    let ran = run(&["--config", &path, "--check-config"], &[]);
    match ran.code {
        Some(2) => assert!(
            ran.stderr.contains(&format!("{path}:6")) || ran.stderr.contains(&format!("{path}:7")),
            "{}",
            ran.show()
        ),
        Some(0) => {
            let r = Report::parse(&ran.stdout, ran.stderr.clone());
            let octal = |key: &str| {
                let v = r.set[key].0.trim_matches('"').trim_start_matches("0o");
                u32::from_str_radix(v, 8).ok()
            };
            assert_eq!(octal("umask"), Some(0o077), "umask; {}", ran.show());
            assert_eq!(
                octal("chmod-socket"),
                Some(0o660),
                "chmod-socket; {}",
                ran.show()
            );
        }
        _ => panic!("{}", ran.show()),
    }
}

/// Flags, environment, and what the message must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// A bad number says what is wrong in words, on the command line and from
/// the environment, and `-1` is a bad value, not an unknown flag.
#[test]
fn bad_numbers_are_explained_wherever_they_come_from() {
    let base = ["--http", "127.0.0.1:0", "--wsgi-file", "etc/apps/hello.py"];
    let cases: [Case; 4] = [
        (
            &["--processes", "-1"],
            &[],
            "'-1' for '--processes <N>': a negative number",
        ),
        (
            &["--harakiri=abc"],
            &[],
            "'abc' for '--harakiri <SECONDS>': not a whole number",
        ),
        (
            &["--listen", "4294967296"],
            &[],
            "too large; at most 4294967295",
        ),
        (&[], &[("RWSGI_THREADS", "many")], "RWSGI_THREADS"),
    ];
    for (flags, env, want) in cases {
        let args: Vec<&str> = base.iter().chain(flags).copied().collect();
        let msg = check_fails(&args, env);
        assert!(msg.contains(want), "{flags:?} {env:?}: {want:?} in:\n{msg}");
        assert!(!msg.contains("unexpected argument"), "{msg}");
    }
}

/// A variable of ours whose value is not UTF-8 is refused by name, not
/// dropped (the default would then apply without a word).
#[test]
fn a_variable_that_is_not_utf8_is_refused_by_name() {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = rwsgi(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            "etc/apps/hello.py",
            "--check-config",
        ],
        &[],
    );
    cmd.env("RWSGI_PROCESSES", std::ffi::OsStr::from_bytes(b"\xff"));
    let ran = run_command(cmd, "rwsgi with RWSGI_PROCESSES=\\xff");
    assert_eq!(ran.code, Some(2), "{}", ran.show());
    assert!(
        ran.stderr
            .contains("env RWSGI_PROCESSES: its value is not valid UTF-8"),
        "{}",
        ran.show()
    );
}

/// A file that cannot be read is named as the user named it.
#[test]
fn an_unreadable_config_file_is_named_as_given() {
    let flag = check_fails(&["--config", "/nonexistent/rwsgi.toml"], &[]);
    assert!(
        flag.contains("--config /nonexistent/rwsgi.toml: "),
        "{flag}"
    );
    let env = check_fails(&[], &[("RWSGI_CONFIG", "/nonexistent/rwsgi.toml")]);
    assert!(
        env.contains("RWSGI_CONFIG=/nonexistent/rwsgi.toml: "),
        "{env}"
    );
}
