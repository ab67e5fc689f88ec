//! Precedence: WEB_CONCURRENCY/PORT < file < RWSGI_* env < flags.

use super::*;

const PRECEDENCE_FILE: &str = "\
[server]
http = [\"127.0.0.1:8001\", \"127.0.0.1:8002\"]

[app]
wsgi-file = \"etc/apps/hello.py\"

[workers]
processes = 2
";

#[test]
fn file_env_and_flags_override_in_order_for_a_scalar_and_a_list() {
    let dir = TempDir::new("cfg-prec");
    let file = write_file(&dir, "app.toml", PRECEDENCE_FILE);
    let at = |key| format!("{file}:{}", line_of(PRECEDENCE_FILE, key));
    let config = ["--config", file.as_str()];
    let env_layer = [
        ("RWSGI_PROCESSES", "3"),
        ("RWSGI_HTTP", "127.0.0.1:8003, 127.0.0.1:8004"),
    ];

    // The file alone; WEB_CONCURRENCY and PORT are below it.
    let below: [&[(&str, &str)]; 2] = [&[], &[("WEB_CONCURRENCY", "9"), ("PORT", "9999")]];
    for env in below {
        let r = check_ok(&config, env);
        r.expect("processes", "2", &at("processes"));
        r.expect(
            "http",
            "[\"127.0.0.1:8001\", \"127.0.0.1:8002\"]",
            &at("http"),
        );
        r.expect("wsgi-file", "\"etc/apps/hello.py\"", &at("wsgi-file"));
    }

    // RWSGI_CONFIG names the file too.
    let r = check_ok(&[], &[("RWSGI_CONFIG", file.as_str())]);
    r.expect("processes", "2", &at("processes"));

    // RWSGI_* beats the file; a list is replaced whole, not merged.
    let r = check_ok(&config, &env_layer);
    r.expect("processes", "3", "env RWSGI_PROCESSES");
    r.expect(
        "http",
        "[\"127.0.0.1:8003\", \"127.0.0.1:8004\"]",
        "env RWSGI_HTTP",
    );
    r.expect("wsgi-file", "\"etc/apps/hello.py\"", &at("wsgi-file"));

    // Flags beat both, each option on its own.
    let mut args = config.to_vec();
    args.extend(["--processes", "4", "--http", "127.0.0.1:8005"]);
    let r = check_ok(&args, &env_layer);
    r.expect("processes", "4", "command line");
    r.expect("http", "[\"127.0.0.1:8005\"]", "command line");

    let mut args = config.to_vec();
    args.extend(["--workers", "5"]);
    let r = check_ok(&args, &env_layer);
    r.expect("processes", "5", "command line");
    r.expect(
        "http",
        "[\"127.0.0.1:8003\", \"127.0.0.1:8004\"]",
        "env RWSGI_HTTP",
    );
}

/// The hosts a server listens on (HTTP), sorted.
fn hosts(server: &Server) -> Vec<String> {
    let mut hosts: Vec<String> = server
        .listening("http")
        .iter()
        .map(|a| a.rsplit_once(':').unwrap().0.to_string())
        .collect();
    hosts.sort();
    hosts
}

#[test]
fn precedence_holds_when_serving() {
    // Distinct loopback addresses (all of 127/8 is loopback on Linux) tell
    // the layers apart; port 0 keeps them free.
    let dir = TempDir::new("cfg-prec-run");
    let file = write_file(
        &dir,
        "app.toml",
        &format!(
            "[server]\nhttp = [\"127.0.0.1:0\"]\n\n[app]\nwsgi-file = \"{}\"\n\n\
             [workers]\nprocesses = 1\n",
            app("hello.py")
        ),
    );
    let env_layer = [
        ("RWSGI_PROCESSES", "3"),
        ("RWSGI_HTTP", "127.0.0.2:0,127.0.0.3:0"),
    ];

    let server = start(&["--config", &file], &env_layer);
    server.wait_for_children(3, PROMPT);
    assert_eq!(
        hosts(&server),
        ["127.0.0.2", "127.0.0.3"],
        "{}",
        server.log_text()
    );
    for addr in server.listening("http") {
        assert_eq!(get(&addr, "/"), (200, "Hello, World!".into()), "via {addr}");
    }
    drop(server);

    let server = start(
        &[
            "--config",
            &file,
            "--processes",
            "2",
            "--http",
            "127.0.0.4:0",
        ],
        &env_layer,
    );
    server.wait_for_children(2, PROMPT);
    assert_eq!(hosts(&server), ["127.0.0.4"], "{}", server.log_text());
    let addr = &server.listening("http")[0];
    assert_eq!(get(addr, "/"), (200, "Hello, World!".into()));
}

#[test]
fn web_concurrency_and_port_apply_only_when_nothing_else_says() {
    let dir = TempDir::new("cfg-platform");
    let app_only = write_file(
        &dir,
        "app.toml",
        "[app]\nwsgi-file = \"etc/apps/hello.py\"\n",
    );
    let with_processes = write_file(
        &dir,
        "processes.toml",
        "[app]\nwsgi-file = \"etc/apps/hello.py\"\n\n[workers]\nprocesses = 2\n",
    );
    let with_http = write_file(
        &dir,
        "http.toml",
        "[server]\nhttp = \"127.0.0.1:8001\"\n\n[app]\nwsgi-file = \"etc/apps/hello.py\"\n",
    );
    let with_socket = write_file(
        &dir,
        "socket.toml",
        "[server]\nsocket = \"/tmp/app.sock\"\n\n[app]\nwsgi-file = \"etc/apps/hello.py\"\n",
    );
    let platform = [("WEB_CONCURRENCY", "3"), ("PORT", "5000")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut env = platform.to_vec();
        env.extend_from_slice(extra);
        env
    };

    let r = check_ok(&["--config", &app_only], &platform);
    r.expect("processes", "3", "env WEB_CONCURRENCY");
    r.expect("http", "[\":5000\"]", "env PORT");

    let r = check_ok(&["--config", &with_processes], &platform);
    r.expect("processes", "2", &format!("{with_processes}:5"));
    let r = check_ok(&["--config", &app_only], &with(&[("RWSGI_PROCESSES", "5")]));
    r.expect("processes", "5", "env RWSGI_PROCESSES");
    let r = check_ok(&["--config", &app_only, "-p", "4"], &platform);
    r.expect("processes", "4", "command line");

    let r = check_ok(&["--config", &with_http], &platform);
    r.expect("http", "[\"127.0.0.1:8001\"]", &format!("{with_http}:2"));
    // Any listener from a higher layer, HTTP or uwsgi, replaces PORT.
    let r = check_ok(&["--config", &with_socket], &platform);
    r.expect_unset("http");
    r.expect("socket", "[\"/tmp/app.sock\"]", &format!("{with_socket}:2"));
    let r = check_ok(
        &["--config", &app_only],
        &with(&[("RWSGI_SOCKET", "/tmp/env.sock")]),
    );
    r.expect_unset("http");
    let r = check_ok(
        &["--config", &app_only, "--socket", "/tmp/flag.sock"],
        &platform,
    );
    r.expect_unset("http");
    r.expect("socket", "[\"/tmp/flag.sock\"]", "command line");
    let r = check_ok(
        &["--config", &app_only, "--http", "127.0.0.1:8009"],
        &platform,
    );
    r.expect("http", "[\"127.0.0.1:8009\"]", "command line");
}

#[test]
fn web_concurrency_and_port_when_serving() {
    let hello = app("hello.py");
    // PORT binds every interface: another process may take the free port
    // between our check and rwsgi's bind, so retry a few times.
    for attempt in 1..=5 {
        let port = free_port().to_string();
        let env = [
            ("WEB_CONCURRENCY", "3"),
            ("PORT", port.as_str()),
            ("RWSGI_PROCESES", "9"),
        ];
        let mut server = Server::spawn_command(rwsgi(&["--wsgi-file", &hello], &env));
        let line = server.wait_for_log_where("ready or a bind failure", STARTUP, |l| {
            l.contains("] ready: ") || l.contains("in use")
        });
        if line.contains("in use") {
            eprintln!("port {port} was taken (attempt {attempt}); retrying");
            continue;
        }
        assert_eq!(
            server.listening("http"),
            [format!("0.0.0.0:{port}")],
            "{}",
            server.log_text()
        );
        server.wait_for_children(3, PROMPT);
        assert_eq!(
            get(&format!("127.0.0.1:{port}"), "/"),
            (200, "Hello, World!".into())
        );
        // The unknown variable is a warning in the log, with the fix.
        let log = server.log_text();
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains("RWSGI_PROCESES")
                && l.contains("did you mean RWSGI_PROCESSES?")),
            "no warning about RWSGI_PROCESES:\n{log}"
        );
        return;
    }
    panic!("no free port for PORT in 5 attempts");
}

#[test]
fn unknown_rwsgi_variable_is_a_warning_with_a_suggestion() {
    let r = check_ok(
        &["--http", "127.0.0.1:0", "--wsgi-file", "etc/apps/hello.py"],
        &[("RWSGI_PROCESES", "3"), ("RWSGI_MAX_REQUEST", "10")],
    );
    for (wrong, right) in [
        ("RWSGI_PROCESES", "RWSGI_PROCESSES"),
        ("RWSGI_MAX_REQUEST", "RWSGI_MAX_REQUESTS"),
    ] {
        assert!(
            r.stderr.lines().any(|l| l.contains("warning")
                && l.contains(wrong)
                && l.contains(&format!("did you mean {right}?"))),
            "no warning for {wrong}:\n{}",
            r.stderr
        );
    }
    // Ignored, not applied.
    assert!(!r.set.contains_key("processes"), "{}", r.text);
    assert!(!r.set.contains_key("max-requests"), "{}", r.text);
}

/// `module` and `wsgi-file` name the same thing: the higher layer's choice
/// replaces the lower one's, whichever of the two each uses.
#[test]
fn a_higher_layer_choosing_the_app_the_other_way_replaces_the_lower_choice() {
    let dir = TempDir::new("cfg-app-choice");
    let by_module = write_file(
        &dir,
        "module.toml",
        "[server]\nhttp = [\"127.0.0.1:8001\"]\n\n[app]\nmodule = \"hello\"\n",
    );
    let hello = app("hello.py");
    let config = ["--config", by_module.as_str()];
    let r = check_ok(&[&config[..], &["--wsgi-file", &hello]].concat(), &[]);
    r.expect("wsgi-file", &format!("{hello:?}"), "command line");
    r.expect_unset("module");
    let r = check_ok(&config, &[("RWSGI_WSGI_FILE", hello.as_str())]);
    r.expect("wsgi-file", &format!("{hello:?}"), "env RWSGI_WSGI_FILE");
    r.expect_unset("module");
    // The other way round: the environment's module over the file's file.
    let by_file = write_file(
        &dir,
        "file.toml",
        &format!("[server]\nhttp = [\"127.0.0.1:8001\"]\n\n[app]\nwsgi-file = {hello:?}\n"),
    );
    let r = check_ok(&["--config", &by_file], &[("RWSGI_MODULE", "hello")]);
    r.expect("module", "\"hello\"", "env RWSGI_MODULE");
    r.expect_unset("wsgi-file");
}

/// A switch turned off, or a list emptied, by a higher layer is reported
/// with that layer, not as a default (no flag is passed for either).
#[test]
fn a_switch_turned_off_or_a_list_emptied_above_the_file_names_its_source() {
    let dir = TempDir::new("cfg-off");
    let text =
        "[server]\nhttp = [\"127.0.0.1:8001\"]\n\n[app]\nwsgi-file = \"etc/apps/hello.py\"\n\
                pythonpath = [\"/tmp\"]\n\n[log]\ndisable-logging = true\n";
    let file = write_file(&dir, "on.toml", text);
    let config = ["--config", file.as_str()];
    let r = check_ok(&config, &[]);
    r.expect(
        "disable-logging",
        "true",
        &format!("{file}:{}", line_of(text, "disable-logging")),
    );
    let env = [("RWSGI_DISABLE_LOGGING", "0"), ("RWSGI_PYTHONPATH", "")];
    let r = check_ok(&config, &env);
    r.expect("disable-logging", "false", "env RWSGI_DISABLE_LOGGING");
    r.expect("pythonpath", "[]", "env RWSGI_PYTHONPATH");
}
