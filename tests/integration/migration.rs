//! Coming from uWSGI or Gunicorn (issue 17, items 9–11): a realistic Django
//! uWSGI ini runs with `--ini` and converts to rwsgi TOML, Gunicorn's command
//! line works or explains itself, and foreign flags, keys and variables get
//! the rwsgi way instead of a misleading guess.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{run, Ran};
use crate::harness::{app, Server, TempDir, PROMPT, STARTUP};
use crate::http::Client;
use crate::uwsgi::{request_packet, Addr};

/// Whether this rwsgi has the flag `--name` (options other work adds).
fn has_flag(name: &str) -> bool {
    run(&["--help"], &[]).stdout.contains(&format!("--{name} "))
}

/// A Django project as `django-admin startproject` lays it out, with a WSGI
/// module that needs no Django: it answers with its settings module.
fn django_project(dir: &Path) {
    let pkg = dir.join("mysite");
    std::fs::create_dir_all(&pkg).expect("mkdir");
    for d in ["run", "log", "static"] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    std::fs::write(pkg.join("__init__.py"), "").expect("write");
    std::fs::write(
        pkg.join("wsgi.py"),
        "import os\n\
         def application(environ, start_response):\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [os.environ['DJANGO_SETTINGS_MODULE'].encode()]\n",
    )
    .expect("write");
}

/// The ini a Django deployment guide would have; `extra` lines are added.
fn django_ini(extra: &str) -> String {
    format!(
        "[uwsgi]\n\
         ; mysite, behind nginx\n\
         project = mysite\n\
         base = %d\n\
         chdir = %(base)\n\
         module = %(project).wsgi:application\n\
         home = $(VENV)\n\
         plugins = python3\n\
         master = true\n\
         processes = 2\n\
         socket = %(base)run/%n.sock\n\
         chmod-socket = 666\n\
         vacuum = true\n\
         harakiri = 30\n\
         max-requests = 5000\n\
         buffer-size = 32768\n\
         env = DJANGO_SETTINGS_MODULE=%(project).settings\n\
         env = LANG=C.UTF-8\n\
         logto = %(base)log/%n.log\n\
         die-on-term = true\n\
         enable-threads = true\n\
         thunder-lock = true\n\
         {extra}"
    )
}

fn report_line<'a>(ran: &'a Ran, key: &str) -> &'a str {
    ran.stdout
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in the report:\n{}", ran.show()))
}

/// `threads` and `static-map` are mapped by name, like every option: where
/// this rwsgi has them they convert, and until then the error lists them.
#[test]
fn a_django_uwsgi_ini_converts_to_toml_and_runs() {
    let dir = TempDir::new("django-ini");
    django_project(dir.path());
    let venv = crate::flask::venv();
    let venv = venv.to_str().unwrap();
    let ini = dir.path().join("uwsgi.ini");
    let base = format!("{}/", dir.path().display());
    let env = [("VENV", venv)];
    let later = "threads = 2\nstatic-map = /static=%(base)static\n";
    let later_known = has_flag("threads") && has_flag("static-map");
    std::fs::write(&ini, django_ini(later)).expect("write");
    let ini_s = ini.to_str().unwrap();
    let ran = run(&["--ini", ini_s, "--check-config"], &env);
    if !later_known {
        assert_eq!(ran.code, Some(2), "{}", ran.show());
        for line in ["line 23: threads: ", "line 24: static-map: "] {
            assert!(ran.stderr.contains(line), "{line:?}: {}", ran.show());
        }
        std::fs::write(&ini, django_ini("")).expect("write");
    }
    let ran = run(&["--ini", ini_s, "--check-config"], &env);
    assert_eq!(ran.code, Some(0), "{}", ran.show());
    let at = |line: usize| format!("  # {ini_s}:{line}");
    for (key, value, line) in [
        ("chdir", format!("{base:?}"), 5),
        ("module", "\"mysite.wsgi:application\"".into(), 6),
        ("home", format!("{venv:?}"), 7),
        ("processes", "2".into(), 10),
        ("socket", format!("[\"{base}run/uwsgi.sock\"]"), 11),
        ("chmod-socket", "\"666\"".into(), 12),
        ("vacuum", "true".into(), 13),
        ("harakiri", "30".into(), 14),
        ("max-requests", "5000".into(), 15),
        ("buffer-size", "32768".into(), 16),
        (
            "env",
            "[\"DJANGO_SETTINGS_MODULE=mysite.settings\", \"LANG=C.UTF-8\"]".into(),
            18,
        ),
        ("logto", format!("\"{base}log/uwsgi.log\""), 19),
    ] {
        assert_eq!(
            report_line(&ran, key),
            format!("{key} = {value}{}", at(line))
        );
    }
    if later_known {
        assert!(report_line(&ran, "threads").starts_with("threads = 2"));
        // The [static] table may write its keys short (`map`).
        let map = ran
            .stdout
            .lines()
            .find(|l| l.starts_with("static-map = ") || l.starts_with("map = "));
        assert!(
            map.is_some_and(|l| l.contains("/static=")),
            "{}",
            ran.show()
        );
    }
    // The report is the migrated configuration: it runs as is.
    let toml = dir.path().join("rwsgi.toml");
    std::fs::write(&toml, &ran.stdout).expect("write");
    let again = run(&["--config", toml.to_str().unwrap(), "--check-config"], &[]);
    assert_eq!(again.code, Some(0), "{}", again.show());

    // And the ini runs: nginx's request on the socket, the log in logto.
    let sock = dir.path().join("run/uwsgi.sock");
    let mut cmd = crate::config::rwsgi(&["--ini", ini_s], &env);
    cmd.current_dir(dir.path());
    let mut server = Server::spawn_command(cmd);
    let deadline = Instant::now() + STARTUP;
    let logto = dir.path().join("log/uwsgi.log");
    while !std::fs::read_to_string(&logto).is_ok_and(|l| l.contains("] ready: ")) {
        assert!(
            server.try_wait().is_none(),
            "rwsgi exited: {}",
            server.log_text()
        );
        assert!(
            Instant::now() < deadline,
            "not ready: {:?}",
            std::fs::read_to_string(&logto)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let packet = request_packet("GET", "/", "", "HTTP/1.1", &[], b"");
    let r = Addr::Unix(sock.clone()).connect().call(&packet);
    assert_eq!(r.body, b"mysite.settings", "{}", r.status_line);
    server.signal("TERM");
    assert!(server.wait_exit(PROMPT).success());
    assert!(!sock.exists(), "vacuum = true removes the socket");
}

#[test]
fn ini_options_rwsgi_lacks_are_listed_together_with_the_rwsgi_way() {
    let dir = TempDir::new("bad-ini");
    let ini = dir.path().join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nwsgi-file = {}\nhttp-socket = :0\nsocket-timeout = 30\n\
             offload-threads = 2\nmax-worker-lifetime = 3600\nunused = x\n\
             plugins = python3,router_cache\nlogto = $(NO_SUCH_VARIABLE)/x.log\n\
             proceses = 4\n[other]\nignored = entirely\n",
            app("hello.py")
        ),
    )
    .expect("write");
    let ran = run(&["--ini", ini.to_str().unwrap(), "--check-config"], &[]);
    assert_eq!(ran.code, Some(2), "{}", ran.show());
    let e = &ran.stderr;
    for want in [
        "7 uWSGI option(s)",
        "line 4: socket-timeout: uWSGI's --socket-timeout is --http-timeout here",
        "line 5: offload-threads: no equivalent",
        "line 6: max-worker-lifetime: rwsgi does not recycle workers by age",
        "line 7: unused: no equivalent",
        "line 8: plugins: no equivalent",
        "line 9: logto = $(NO_SUCH_VARIABLE)/x.log: $(NO_SUCH_VARIABLE): the environment has no",
        "line 10: proceses: did you mean processes?",
    ] {
        assert!(e.contains(want), "{want:?} in:\n{e}");
    }
    assert!(!e.contains("ignored"), "only [uwsgi] is read: {e}");

    // One file: --ini with --config is refused; with RWSGI_CONFIG, --ini wins.
    let ini = ini.to_str().unwrap();
    let both = run(&["--ini", ini, "--config", "x.toml", "--check-config"], &[]);
    assert!(both.stderr.contains("choose one"), "{}", both.show());
    let env = run(
        &["--ini", ini, "--check-config"],
        &[("RWSGI_CONFIG", "x.toml")],
    );
    assert!(env.stderr.contains("7 uWSGI option(s)"), "{}", env.show());
    let huge = run(&["--ini", "/dev/zero"], &[]);
    assert_eq!(huge.code, Some(2), "{}", huge.show());
    assert!(huge.stderr.contains("larger than 1 MiB"), "{}", huge.show());
}

#[test]
fn gunicorn_command_lines_run_or_explain_themselves() {
    // `gunicorn --bind ADDR app` as it is typed.
    let mut server = Server::spawn(&["--bind", "127.0.0.1:0", &app("hello.py"), "-w", "hello"]);
    let e = server.wait_exit(PROMPT);
    assert_eq!(
        e.code(),
        Some(2),
        "APP and -w both name the app: {}",
        server.log_text()
    );
    assert!(
        server.log_text().contains("given twice"),
        "{}",
        server.log_text()
    );

    let mut server = Server::spawn(&["--bind", "127.0.0.1:0", &app("hello.py")]);
    server.wait_for_log("] ready: ", STARTUP);
    let port: u16 = server.listening("http")[0]
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(Client::connect(port).get("/").body, b"Hello, World!");

    let ran = run(
        &["--bind", ":0", "mysite.wsgi:application", "--check-config"],
        &[],
    );
    assert_eq!(ran.code, Some(0), "{}", ran.show());
    assert!(ran
        .stdout
        .contains("module = \"mysite.wsgi:application\"  # command line"));
    assert!(ran.stdout.contains("http = [\":0\"]  # command line"));

    // Where Gunicorn and uWSGI disagree on a short flag, the first error says so.
    for (args, want) in [
        (
            &["-w", "4", "-b", "0.0.0.0:8000", "mysite.wsgi"][..],
            "Gunicorn's -b ADDR is --bind ADDR",
        ),
        (
            &["-w", "4", "mysite.wsgi:application"][..],
            "for 4 workers use --processes 4",
        ),
        (
            &["--http", "http://127.0.0.1:8000", "mysite.wsgi"][..],
            "drop the scheme (127.0.0.1:8000)",
        ),
        (
            &["--http", ":0", "mysite.wsgi:create_app()"][..],
            "no app factory",
        ),
    ] {
        let ran = run(args, &[]);
        assert_eq!(ran.code, Some(2), "{args:?}: {}", ran.show());
        assert!(ran.stderr.contains(want), "{args:?}: {}", ran.show());
    }
}

#[test]
fn foreign_flags_keys_and_variables_get_the_rwsgi_way_not_a_guess() {
    for (flag, want) in [
        ("--max-worker-lifetime", "--max-requests"),
        ("--proxy-protocol", "X-Forwarded-For"),
        ("--limit-request-line", "--buffer-size"),
        ("--statsd-host", "--metrics"),
        ("--check-static", "--static-map"),
        (
            "--no-such-flag-at-all",
            "unknown option --no-such-flag-at-all",
        ),
    ] {
        let ran = run(&[flag, "1"], &[]);
        assert_eq!(ran.code, Some(2), "{}", ran.show());
        assert!(
            ran.stderr.contains(want)
                && !ran.stderr.contains("similar")
                && !ran.stderr.contains("did you mean"),
            "{flag}: {}",
            ran.show()
        );
    }
    let hello = app("hello.py");
    let dir = TempDir::new("foreign-keys");
    for (table, line, want) in [
        (
            "workers",
            "master = true",
            "uWSGI's master is what rwsgi always does",
        ),
        ("workers", "workers = 4", "the key is \"processes\""),
        ("log", "statsd-host = \"x\"", "--metrics"),
    ] {
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            format!("[app]\nwsgi-file = {hello:?}\n[{table}]\n{line}\n"),
        )
        .expect("write");
        let ran = run(
            &[
                "--http",
                ":0",
                "--config",
                file.to_str().unwrap(),
                "--check-config",
            ],
            &[],
        );
        assert_eq!(ran.code, Some(2), "{}", ran.show());
        assert!(ran.stderr.contains(want), "{line}: {}", ran.show());
    }
    let ran = run(
        &["--http", ":0", "--wsgi-file", &hello, "--check-config"],
        &[("RWSGI_WORKERS", "4")],
    );
    assert!(
        ran.stderr.contains("RWSGI_WORKERS")
            && ran.stderr.contains("the variable is RWSGI_PROCESSES"),
        "{}",
        ran.show()
    );
}
