//! The documentation matches the binary: every long flag `--help` lists is
//! documented in rwsgi(1), and the man page renders without warnings.

use std::process::Command;

fn help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rwsgi"))
        .arg("--help")
        .output()
        .expect("run rwsgi --help");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8 help")
}

fn man_page() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/rwsgi.1"))
        .expect("read man/rwsgi.1")
}

/// Long flags and aliases as `--help` prints them.
fn long_flags(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_alphanumeric())
                .to_string()
        })
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn every_flag_is_in_the_man_page() {
    let man = man_page().replace("\\-", "-");
    let flags = long_flags(&help());
    assert!(
        flags.len() > 20,
        "parsed too few flags from --help: {flags:?}"
    );
    let missing: Vec<&String> = flags.iter().filter(|f| !man.contains(f.as_str())).collect();
    assert!(
        missing.is_empty(),
        "flags missing from man/rwsgi.1: {missing:?}"
    );
}

#[test]
fn man_page_renders_without_warnings() {
    let out = Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/man/rwsgi.1"))
        .output()
        .expect("groff is needed (scripts/test installs groff-base)");
    assert!(out.status.success(), "groff failed");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.trim().is_empty(), "groff warnings:\n{warnings}");
}

// ---------------------------------------------------------------------------
// rwsgi.toml(5): the configuration file

fn toml5_path() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/man/rwsgi.toml.5")
}

fn toml5() -> String {
    std::fs::read_to_string(toml5_path()).expect("read man/rwsgi.toml.5")
}

/// groff source as text: escapes resolved, argument quotes dropped.
fn unescape(line: &str) -> String {
    line.replace('"', "")
        .replace("\\(dq", "\"")
        .replace("\\-", "-")
        .replace("\\&", "")
        .replace("\\e", "\\")
}

/// rwsgi with a clean configuration environment (no inherited RWSGI_*,
/// WEB_CONCURRENCY or PORT), in the project directory.
fn rwsgi(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsgi"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("RWSGI_") || name == "WEB_CONCURRENCY" || name == "PORT" {
            cmd.env_remove(name);
        }
    }
    cmd.output().expect("run rwsgi")
}

/// A scratch directory, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rwsgi-docs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a scratch file");
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every option as `--check-config` lists it for a minimal file:
/// (table, key, default), the default when the report shows one.
fn schema_keys() -> Vec<(String, String, Option<String>)> {
    let scratch = Scratch::new("keys");
    let file = scratch.file(
        "minimal.toml",
        "[server]\nhttp = \"127.0.0.1:0\"\n\n[app]\nwsgi-file = \"etc/apps/hello.py\"\n",
    );
    let out = rwsgi(&["--config", &file, "--check-config"]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "--check-config failed:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut keys = Vec::new();
    let mut table = String::new();
    for line in report.lines() {
        if let Some(t) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = t.to_string();
            continue;
        }
        if table.is_empty() || line.trim().is_empty() || line.starts_with("## configuration") {
            continue;
        }
        let line = line.trim_start_matches('#').trim_start();
        let not_set = line
            .split_once(" is not set")
            .filter(|(_, rest)| rest.is_empty() || rest.starts_with(" ("));
        let (key, default) = if let Some((k, _)) = not_set {
            (k, None)
        } else {
            let (k, rest) = line
                .split_once(" = ")
                .unwrap_or_else(|| panic!("unexpected report line {line:?}"));
            let default = rest
                .strip_suffix("  # default")
                .map(|d| d.trim_matches('"').to_string());
            (k, default)
        };
        keys.push((table.clone(), key.to_string(), default));
    }
    keys
}

/// The key entries of rwsgi.toml(5) (`.TP` then `.B key` inside a
/// `.SS [table]` subsection): (table, key) -> the entry as plain text.
fn toml5_entries() -> std::collections::BTreeMap<(String, String), String> {
    let man = toml5();
    let lines: Vec<&str> = man.lines().collect();
    let mut entries = std::collections::BTreeMap::new();
    let mut table: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(t) = line.strip_prefix(".SS [").and_then(|t| t.strip_suffix(']')) {
            table = Some(t.to_string());
        } else if line.starts_with(".SH") || line.starts_with(".SS") {
            table = None;
        } else if let (Some(t), ".TP") = (&table, line) {
            if let Some(key) = lines.get(i + 1).and_then(|l| l.strip_prefix(".B ")) {
                let mut text = Vec::new();
                let mut j = i + 2;
                while j < lines.len() && !matches!(lines[j], ".TP") && !lines[j].starts_with(".S") {
                    let l = lines[j];
                    let body = if l.starts_with('.') {
                        l.split_once(' ').map_or("", |(_, rest)| rest)
                    } else {
                        l
                    };
                    text.push(unescape(body));
                    j += 1;
                }
                entries.insert((t.clone(), unescape(key)), text.join(" "));
            }
        }
        i += 1;
    }
    entries
}

#[test]
fn every_config_key_is_in_rwsgi_toml_5_with_its_default() {
    let keys = schema_keys();
    assert!(keys.len() > 40, "parsed too few keys: {keys:?}");
    let entries = toml5_entries();
    let mut wrong = Vec::new();
    for (table, key, default) in &keys {
        let Some(text) = entries.get(&(table.clone(), key.clone())) else {
            wrong.push(format!("[{table}] {key}: no entry under .SS [{table}]"));
            continue;
        };
        // "Type...; DEFAULT. Meaning": the default is what follows the
        // first ';' up to the end of that sentence.
        let stated = text
            .split_once(';')
            .map(|(_, rest)| rest.split(". ").next().unwrap_or(rest))
            .unwrap_or("");
        let stated = stated.trim().trim_end_matches('.').trim().trim_matches('"');
        if stated.is_empty() {
            wrong.push(format!(
                "[{table}] {key}: no \"TYPE; DEFAULT.\" in {text:?}"
            ));
            continue;
        }
        // Defaults the report states as a value (not a phrase) must match.
        if let Some(d) = default.as_deref().filter(|d| !d.contains(' ')) {
            if !stated.starts_with(d) {
                wrong.push(format!(
                    "[{table}] {key}: --check-config says the default is {d}, the man page {stated:?}"
                ));
            }
        }
    }
    let documented: Vec<_> = entries.keys().collect();
    for (table, key) in &documented {
        if !keys.iter().any(|(t, k, _)| t == table && k == key) {
            wrong.push(format!(
                "[{table}] {key} is documented but is not an option"
            ));
        }
    }
    assert!(wrong.is_empty(), "man/rwsgi.toml.5:\n{}", wrong.join("\n"));
}

#[test]
fn rwsgi_toml_5_renders_without_warnings() {
    let out = Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(toml5_path())
        .output()
        .expect("groff is needed (scripts/test installs groff-base)");
    assert!(out.status.success(), "groff failed");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.trim().is_empty(), "groff warnings:\n{warnings}");
}

#[test]
fn rwsgi_toml_5_covers_precedence_environment_and_checking() {
    let man = unescape(&toml5());
    for needle in [
        "RWSGI_CONFIG",
        "WEB_CONCURRENCY",
        "PORT",
        "RWSGI_PROCESSES",
        "--check-config",
        "--config",
        "did you mean",
        ".SH PRECEDENCE",
        ".SH ENVIRONMENT",
        ".SH ERRORS",
        ".SH EXAMPLE",
    ] {
        assert!(man.contains(needle), "man/rwsgi.toml.5 lacks {needle:?}");
    }
    let man1 = man_page();
    assert!(
        man1.contains(".SH CONFIGURATION FILE") && man1.contains(".BR rwsgi.toml (5)"),
        "man/rwsgi.1 should point to rwsgi.toml(5) in a CONFIGURATION FILE section"
    );
}

#[test]
fn rwsgi_toml_5_example_passes_check_config() {
    let man = toml5();
    let example = man
        .split(".SH EXAMPLE")
        .nth(1)
        .and_then(|s| s.split(".EX\n").nth(1))
        .and_then(|s| s.split("\n.EE").next())
        .expect("an .EX/.EE block in the EXAMPLE section");
    let text: String = example
        .lines()
        .map(|l| {
            l.replace("\\-", "-")
                .replace("\\(dq", "\"")
                .replace("\\&", "")
                .replace("\\e", "\\")
                + "\n"
        })
        .collect();
    let scratch = Scratch::new("example");
    let file = scratch.file("example.toml", &text);
    // The directories it names exist on the server it describes, not here.
    let stand_in = scratch.0.to_string_lossy().into_owned();
    std::fs::create_dir_all(scratch.0.join("venv/bin")).unwrap();
    std::fs::write(scratch.0.join("venv/bin/python"), "").unwrap();
    let venv = scratch.0.join("venv").to_string_lossy().into_owned();
    let out = rwsgi(&[
        "--config",
        &file,
        "--chdir",
        &stand_in,
        "--home",
        &venv,
        "--check-config",
    ]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the example fails --check-config:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let settings = text
        .lines()
        .filter(|l| l.contains(" = ") && !l.starts_with('#'))
        .count();
    let from_file = report
        .lines()
        .filter(|l| l.contains(&format!("# {file}:")))
        .count();
    assert_eq!(
        from_file + 2,
        settings,
        "every setting of the example (but chdir and home) should be in effect:\n{report}"
    );
}
