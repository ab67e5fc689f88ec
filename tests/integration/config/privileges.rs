//! --uid / --gid: the workers drop privileges.

use super::*;

/// What a worker running as an unprivileged user needs to start Python.
/// When the embedded Python's standard library is not readable by others
/// (pyenv under a 0700 /root, say), the workers get a PYTHONHOME with a
/// world-readable copy of the part of it that Python needs to start and to
/// serve `cfg_env.py`; nothing else about the run changes.
struct UnprivilegedPython {
    _home: Option<TempDir>,
    env: Vec<(String, String)>,
}

impl UnprivilegedPython {
    fn new() -> UnprivilegedPython {
        let Some(stdlib) = embedded_stdlib() else {
            return UnprivilegedPython {
                _home: None,
                env: Vec::new(),
            };
        };
        if world_readable(&stdlib.join("os.py")) {
            return UnprivilegedPython {
                _home: None,
                env: Vec::new(),
            };
        }
        let home = TempDir::new("cfg-pyhome");
        let lib = home.path().join("lib").join(stdlib.file_name().unwrap());
        copy_tree(&stdlib, &lib, true);
        for sub in ["encodings", "importlib", "collections", "json"] {
            copy_tree(&stdlib.join(sub), &lib.join(sub), false);
        }
        for d in [home.path().to_path_buf(), home.path().join("lib")] {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        eprintln!(
            "{} is not readable by other users: workers get PYTHONHOME={}",
            stdlib.display(),
            home.path().display()
        );
        let env = vec![(
            "PYTHONHOME".to_string(),
            home.path().to_string_lossy().into_owned(),
        )];
        UnprivilegedPython {
            _home: Some(home),
            env,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// The standard library of the libpython rwsgi is linked against (from ldd).
fn embedded_stdlib() -> Option<PathBuf> {
    let out = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_rwsgi"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lib = text
        .lines()
        .find(|l| l.contains("libpython"))?
        .split("=>")
        .nth(1)?
        .split_whitespace()
        .next()?
        .to_string();
    let lib = Path::new(&lib);
    // libpython3.11.so.1.0 -> python3.11
    let name = lib.file_name()?.to_str()?;
    let version = name.strip_prefix("libpython")?.split(".so").next()?;
    let stdlib = lib.parent()?.join(format!("python{version}"));
    stdlib.is_dir().then_some(stdlib)
}

/// Whether a user other than the owner can read `path` (every directory on
/// the way must be searchable by others).
fn world_readable(path: &Path) -> bool {
    let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0);
    path.ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .all(|d| mode(d) & 0o001 != 0)
        && mode(path) & 0o004 != 0
}

/// Copies the files of `from` (and, unless `flat`, its subdirectories) to
/// `to`, world-readable.
fn copy_tree(from: &Path, to: &Path, flat: bool) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
    let Ok(entries) = fs::read_dir(from) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !flat && name != "__pycache__" {
                copy_tree(&path, &to.join(&name), false);
            }
        } else if path.extension().is_some_and(|e| e == "py") {
            fs::copy(&path, to.join(&name)).unwrap();
            fs::set_permissions(to.join(&name), fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// The uid and gid of `user` from /etc/passwd.
fn passwd_ids(user: &str) -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let fields: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == user)
        .unwrap_or_else(|| panic!("no user {user} in /etc/passwd"));
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

/// The gid of `group` from /etc/group.
fn group_id(group: &str) -> u32 {
    let groups = fs::read_to_string("/etc/group").unwrap();
    groups
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == group)
        .unwrap_or_else(|| panic!("no group {group} in /etc/group"))[2]
        .parse()
        .unwrap()
}

/// Starts cfg_env.py with `extra` flags as an unprivileged worker user.
fn start_unprivileged(python: &UnprivilegedPython, extra: &[&str]) -> Server {
    let app = app("cfg_env.py");
    assert!(
        world_readable(Path::new(&app)),
        "{app} must be readable by the worker user"
    );
    let mut args = vec!["--http", "127.0.0.1:0", "--wsgi-file", app.as_str()];
    args.extend_from_slice(extra);
    start(&args, &python.env())
}

#[test]
fn needs_root_uid_and_gid_drop_the_workers_privileges() {
    needs_root();
    let (uid, _) = passwd_ids("nobody");
    let gid = group_id("nogroup");
    let python = UnprivilegedPython::new();
    let server = start_unprivileged(&python, &["--uid", "nobody", "--gid", "nogroup", "-p", "2"]);
    let workers = server.wait_for_children(2, PROMPT);
    for w in &workers {
        assert_eq!(proc_status(*w, "Uid"), [uid; 4], "worker {w}");
        assert_eq!(proc_status(*w, "Gid"), [gid; 4], "worker {w}");
        assert_eq!(
            proc_status(*w, "Groups"),
            [gid],
            "worker {w}: supplementary groups"
        );
    }
    assert_eq!(
        proc_status(server.pid(), "Uid"),
        [0; 4],
        "the master stays root"
    );
    let addr = server.listening("http")[0].clone();
    assert_eq!(get(&addr, "/"), (200, format!("{uid} {gid}")));
}

#[test]
fn needs_root_uid_and_gid_apply_to_the_preload_template_and_its_workers() {
    needs_root();
    let (uid, _) = passwd_ids("nobody");
    let gid = group_id("nogroup");
    let python = UnprivilegedPython::new();
    let server = start_unprivileged(
        &python,
        &[
            "--uid",
            "nobody",
            "--gid",
            "nogroup",
            "-p",
            "2",
            "--preload",
        ],
    );
    // The template imported as nobody; its workers are the master's children.
    let children = server.wait_for_children(3, PROMPT);
    for c in &children {
        assert_eq!(proc_status(*c, "Uid"), [uid; 4], "child {c}");
        assert_eq!(proc_status(*c, "Gid"), [gid; 4], "child {c}");
        assert_eq!(proc_status(*c, "Groups"), [gid], "child {c}");
    }
    assert!(server
        .log_text()
        .contains("preload: workers forked from template"));
    let addr = server.listening("http")[0].clone();
    assert_eq!(get(&addr, "/"), (200, format!("{uid} {gid}")));
}

#[test]
fn needs_root_numeric_uid_without_gid_takes_the_users_group() {
    needs_root();
    // --gid defaults to the user's group, whether --uid is a name or a number.
    let (uid, gid) = passwd_ids("nobody");
    let python = UnprivilegedPython::new();
    let uid_arg = uid.to_string();
    let server = start_unprivileged(&python, &["--uid", &uid_arg]);
    let worker = server.wait_for_children(1, PROMPT)[0];
    assert_eq!(proc_status(worker, "Uid"), [uid; 4]);
    assert_eq!(
        proc_status(worker, "Gid"),
        [gid; 4],
        "--uid {uid} left the worker in another group"
    );
    assert_eq!(proc_status(worker, "Groups"), [gid], "supplementary groups");
}

#[test]
fn needs_root_logto_reopen_works_for_workers_that_dropped_privileges() {
    needs_root();
    let dir = TempDir::new("cfg-logto-uid");
    let (log, rotated) = (dir.file("rwsgi.log"), dir.file("rwsgi.log.1"));
    let python = UnprivilegedPython::new();
    let app = app("cfg_env.py");
    let mut server = Server::spawn_command(rwsgi(
        &[
            "--http",
            "127.0.0.1:0",
            "--wsgi-file",
            &app,
            "--uid",
            "nobody",
            "--gid",
            "nogroup",
            "--logto",
            &log,
        ],
        &python.env(),
    ));
    let text = wait_file(&log, "ready", STARTUP, Some(&mut server), |t| {
        t.contains("] ready: ")
    });
    let addr = http_addr(&text);
    let worker = server.wait_for_children(1, PROMPT)[0];
    fs::rename(&log, &rotated).unwrap();
    server.signal("USR1");
    let master = server.pid();
    wait_file(
        &log,
        "the master reopened the log",
        PROMPT,
        Some(&mut server),
        |t| t.contains(&format!("[pid {master}] reopened the log file")),
    );
    // Once the worker has handled the USR1 (it logs either way, in one of
    // the two files), a request it serves must be logged in the new file.
    let both = || {
        fs::read_to_string(&log).unwrap_or_default()
            + &fs::read_to_string(&rotated).unwrap_or_default()
    };
    let deadline = Instant::now() + PROMPT;
    let handled = |t: &str| {
        t.contains(&format!("[pid {worker}] reopened"))
            || t.contains(&format!("[pid {worker}] cannot reopen"))
    };
    while !handled(&both()) {
        assert!(
            Instant::now() < deadline,
            "worker {worker} never handled USR1:\n{}",
            both()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(&addr, "/after-rotate").0, 200);
    while !both().contains("GET /after-rotate") {
        assert!(
            Instant::now() < deadline,
            "no access-log line for /after-rotate:\n{}",
            both()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let new = fs::read_to_string(&log).unwrap_or_default();
    let old = fs::read_to_string(&rotated).unwrap_or_default();
    assert!(
        new.contains("GET /after-rotate"),
        "after USR1 the worker (uid nobody) still logs to the rotated file.\n\
         new file:\n{new}\nrotated file:\n{old}"
    );
}
