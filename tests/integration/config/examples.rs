//! The example files in etc/ pass --check-config and mean what they say.

use super::*;

/// A scratch stand-in for the directories an example's `chdir` and `home`
/// name on its real host: `--check-config` checks that they exist.
struct Stand {
    dir: TempDir,
}

impl Stand {
    fn new() -> Stand {
        let dir = TempDir::new("cfg-stand");
        fs::create_dir_all(dir.path().join("venv/bin")).unwrap();
        fs::write(dir.path().join("venv/bin/python"), "").unwrap();
        Stand { dir }
    }

    /// Flags that replace the file's `chdir`/`home` when they do not exist here.
    fn overrides(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (key, stand_in) in [
            ("chdir", self.dir.path().to_path_buf()),
            ("home", self.dir.path().join("venv")),
        ] {
            let Some(value) = file_value(text, key) else {
                continue;
            };
            let present = match key {
                "home" => Path::new(&value).join("bin/python").exists(),
                _ => Path::new(&value).is_dir(),
            };
            if !present {
                out.push(format!("--{key}"));
                out.push(stand_in.to_string_lossy().into_owned());
            }
        }
        out
    }
}

/// The settings a flat TOML file makes: (line number, key, raw value) for
/// each `key = value` line that is not a comment.
fn file_settings(text: &str) -> Vec<(usize, String, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.trim();
            if l.starts_with('#') || l.starts_with('[') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.split(" #").next().unwrap_or("").trim();
            Some((i + 1, k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// The string value of `key` in a flat TOML file, if it sets it.
fn file_value(text: &str, key: &str) -> Option<String> {
    file_settings(text)
        .into_iter()
        .find(|(_, k, _)| k == key)
        .map(|(_, _, v)| v.trim_matches('"').to_string())
}

/// Every *.toml file under etc/, as paths relative to the project.
fn example_configs() -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::from("etc")];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(project_dir().join(&dir))
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = dir.join(entry.unwrap().file_name());
            if project_dir().join(&path).is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                found.push(path.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_example_config_passes_check_config() {
    let files = example_configs();
    for want in [
        "etc/rwsgi.toml",
        "etc/django.toml",
        "etc/nginx.toml",
        "etc/container.toml",
    ] {
        assert!(
            files.iter().any(|f| f == want),
            "{want} is missing: {files:?}"
        );
    }
    let stand = Stand::new();
    for file in &files {
        let text = fs::read_to_string(project_dir().join(file)).unwrap();
        let overrides = stand.overrides(&text);
        let mut args = vec!["--config", file.as_str()];
        args.extend(overrides.iter().map(String::as_str));
        let report = check_ok(&args, &[]);
        assert!(
            report
                .text
                .starts_with(&format!("## configuration file: {file}\n")),
            "{file}: the report does not name the file:\n{}",
            report.text
        );
        // The directories an example's sockets and logs go in exist on the
        // server it describes (made by systemd), not here: only those may warn.
        let warnings: Vec<&str> = report
            .stderr
            .lines()
            .filter(|l| l.contains("warning") && !l.contains("does not exist; create it first"))
            .collect();
        assert!(warnings.is_empty(), "{file}: warnings:\n{}", report.stderr);
        // Every setting in the file is in effect, traced to its line.
        let settings = file_settings(&text);
        assert!(!settings.is_empty(), "{file} sets nothing");
        for (line, key, raw) in settings {
            // A `false` switch is the same as leaving it out: not listed.
            if overrides.contains(&format!("--{key}")) || raw == "false" {
                continue;
            }
            let (value, source) = report.set.get(&key).unwrap_or_else(|| {
                panic!(
                    "{file}:{line}: {key} is not in effect; report:\n{}",
                    report.text
                )
            });
            assert_eq!(
                source,
                &format!("{file}:{line}"),
                "{file}: {key} = {raw} comes from elsewhere"
            );
            let strip = |s: &str| s.replace(char::is_whitespace, "");
            assert_eq!(strip(value), strip(&raw), "{file}:{line}: {key}");
        }
    }
}

#[test]
fn container_example_takes_processes_from_web_concurrency_and_fits_kubernetes() {
    let file = "etc/container.toml";
    let text = fs::read_to_string(project_dir().join(file)).unwrap();
    let stand = Stand::new();
    let overrides = stand.overrides(&text);
    let mut args = vec!["--config", file];
    args.extend(overrides.iter().map(String::as_str));

    let report = check_ok(&args, &[("WEB_CONCURRENCY", "3"), ("PORT", "5000")]);
    report.expect("processes", "3", "env WEB_CONCURRENCY");
    // The file says where to listen, so PORT does not.
    let line = line_of(&text, "http");
    report.expect("http", "[\":8000\"]", &format!("{file}:{line}"));
    for key in ["stats", "metrics", "shutdown-delay", "shutdown-timeout"] {
        assert!(report.set.contains_key(key), "{file} should set {key}");
    }
    for key in ["daemonize", "pidfile", "logto"] {
        report.expect_unset(key);
    }

    // Kubernetes must not SIGKILL before the delay and the drain are over.
    let num = |key: &str| -> u64 { report.set[key].0.parse().unwrap() };
    let (delay, timeout) = (num("shutdown-delay"), num("shutdown-timeout"));
    assert!(delay > 0, "a pod keeps getting traffic after SIGTERM");
    let deployment = project_dir().join("etc/kubernetes/deployment.yaml");
    if let Ok(yaml) = fs::read_to_string(&deployment) {
        let grace: u64 = yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("terminationGracePeriodSeconds in deployment.yaml");
        assert!(
            delay + timeout < grace,
            "shutdown-delay {delay} + shutdown-timeout {timeout} must stay below \
             terminationGracePeriodSeconds {grace}"
        );
    }
}
