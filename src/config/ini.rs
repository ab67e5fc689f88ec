//! `--ini FILE`: a uWSGI ini file's `[uwsgi]` section as a configuration
//! layer, in place of a TOML file.
//!
//! Each key is looked up among rwsgi's flags by name or alias (clap's
//! argument list, so an option rwsgi gains later is mapped without a change
//! here). Options that restate what rwsgi always does (`master`, `plugin =
//! python3`, …) are accepted silently. Everything else is collected and
//! refused in one error, each with the rwsgi way or "no equivalent".
//!
//! Substitutions, as uWSGI does them: `%d` (the file's directory, with a
//! trailing `/`), `%n` (its name without extension), `%s` (its name), `%p`
//! (its full path), `%c` (its directory's name), `%%`, `$(VAR)` (from the
//! environment) and `%(key)` (a key set above; a key that is only ever used
//! that way is a placeholder, as in uWSGI).

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;

use super::layers::{LoadError, Setting};
use super::schema::{self, Kind};
use super::ConfigError;
use crate::cli::{Cli, COMPAT_FLAGS};

/// uWSGI options, besides the flags in `COMPAT_FLAGS`, that restate what
/// rwsgi always does (`plugin`/`plugins` are checked by value).
const RESTATED: &[&str] = &[
    "no-orphans",
    "auto-procname",
    "py-call-osafterfork",
    "log-master",
    "wsgi-env-behaviour",
];

/// One `key = value` line of the `[uwsgi]` section.
struct Line {
    no: usize,
    key: String,
    value: String,
}

/// The file, for the substitutions.
struct FileVars {
    dir: String,
    stem: String,
    name: String,
    full: String,
    dir_name: String,
}

pub fn load(path: &Path, env: &[(String, String)]) -> Result<Vec<Setting>, LoadError> {
    let shown = path.display().to_string();
    let fail = |msg: String| LoadError::Config(ConfigError::Source(msg));
    let text = read(path).map_err(|e| fail(format!("--ini {shown}: {e}")))?;
    let lines = section(&text);
    if lines.is_empty() {
        return Err(fail(format!(
            "--ini {shown}: no [uwsgi] section with options in it"
        )));
    }
    let full = super::paths::absolute(path);
    let vars = FileVars {
        dir: full
            .parent()
            .map(|d| format!("{}/", d.display().to_string().trim_end_matches('/')))
            .unwrap_or_default(),
        stem: stem(&full),
        name: full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        full: full.display().to_string(),
        dir_name: full
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    // Keys used as %(key) anywhere may be placeholders.
    let referenced: BTreeSet<String> = lines.iter().flat_map(|l| references(&l.value)).collect();
    let cmd = Cli::command();
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut out: Vec<Setting> = Vec::new();
    let mut problems = Vec::new();
    for line in &lines {
        let at = format!("{shown}:{}", line.no);
        let value = match substitute(&line.value, &vars, env, &seen) {
            Ok(v) => v,
            Err(why) => {
                problems.push(format!(
                    "line {}: {} = {}: {why}",
                    line.no, line.key, line.value
                ));
                continue;
            }
        };
        seen.push((line.key.clone(), value.clone()));
        let key = line.key.as_str();
        if restated(key, &value) {
            continue;
        }
        let arg = cmd.get_arguments().find(|a| {
            a.get_long() == Some(key) || a.get_all_aliases().unwrap_or_default().contains(&key)
        });
        let option = arg.and_then(|a| schema::find(a.get_long()?));
        let Some((_, name, kind)) = option else {
            if !referenced.contains(key) {
                let way = match (crate::cli_hints::for_key(key), schema::suggest(key)) {
                    (Some(way), _) => way.to_string(),
                    // A typo of an option rwsgi has (`proceses`).
                    (None, Some(close)) => format!("did you mean {close}?"),
                    (None, None) => "no equivalent".to_string(),
                };
                problems.push(format!("line {}: {key}: {way}", line.no));
            }
            continue;
        };
        let value = if kind == Kind::Bool {
            match value.to_ascii_lowercase().as_str() {
                "" | "1" | "true" | "yes" | "on" => "true".to_string(),
                "0" | "false" | "no" | "off" => "false".to_string(),
                v => {
                    problems.push(format!(
                        "line {}: {key} = {v}: expected true or false",
                        line.no
                    ));
                    continue;
                }
            }
        } else {
            // An empty value is the bare flag (`chmod-socket =` is 666).
            value
        };
        match out.iter_mut().find(|s| s.key == name) {
            // Repeated lines add to a list; otherwise the last one wins.
            Some(s) if kind == Kind::List => {
                s.values.push(value);
                s.source = at;
            }
            Some(s) => {
                s.values = vec![value];
                s.source = at;
            }
            None => out.push(Setting {
                key: name,
                values: vec![value],
                source: at,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(fail(format!(
            "--ini {shown}: {} uWSGI option(s) rwsgi does not take; remove them, or use \
             the rwsgi way:\n  {}",
            problems.len(),
            problems.join("\n  ")
        )));
    }
    Ok(out)
}

/// The file's text; real ones are a few KiB, so past 1 MiB it is not one
/// (`--ini /dev/zero` must fail at once, not fill memory).
fn read(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    const MAX: u64 = 1024 * 1024;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX {
        return Err(Error::new(
            ErrorKind::InvalidData,
            "larger than 1 MiB, the most rwsgi reads; is this the ini file?",
        ));
    }
    String::from_utf8(bytes).map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Whether `key = value` only restates what rwsgi always does.
fn restated(key: &str, value: &str) -> bool {
    if matches!(key, "plugin" | "plugins") {
        // python, python3, python311: the only plugin rwsgi has, built in.
        return value
            .split([',', ' '])
            .filter(|p| !p.is_empty())
            .all(|p| p.starts_with("python") || p == "0");
    }
    COMPAT_FLAGS.contains(&key) || RESTATED.contains(&key)
}

/// The `[uwsgi]` section's lines (comments `;` and `#` skipped). A bare
/// key is a switch turned on.
fn section(text: &str) -> Vec<Line> {
    let mut current = String::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with(';') || t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = name.trim().to_string();
            continue;
        }
        if current != "uwsgi" {
            continue;
        }
        let (key, value) = t.split_once('=').unwrap_or((t, ""));
        out.push(Line {
            no: i + 1,
            key: key.trim().replace('_', "-"),
            value: value.trim().to_string(),
        });
    }
    out
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `%(key)` names in a value.
fn references(value: &str) -> Vec<String> {
    value
        .split("%(")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(k, _)| k.to_string()))
        .collect()
}

/// A value with uWSGI's substitutions made, or why one cannot be.
fn substitute(
    value: &str,
    vars: &FileVars,
    env: &[(String, String)],
    seen: &[(String, String)],
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find(['%', '$']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$(") {
            let (name, after) = after
                .split_once(')')
                .ok_or("$( without a closing parenthesis")?;
            let v = env
                .iter()
                .find(|(k, _)| k == name)
                .ok_or(format!("$({name}): the environment has no {name}"))?;
            out.push_str(&v.1);
            rest = after;
            continue;
        }
        if let Some(after) = tail.strip_prefix("%(") {
            let (name, after) = after
                .split_once(')')
                .ok_or("%( without a closing parenthesis")?;
            let v = seen
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .ok_or(format!("%({name}): no {name} is set above this line"))?;
            out.push_str(&v.1);
            rest = after;
            continue;
        }
        let mut chars = tail.chars();
        let sigil = chars.next().unwrap_or('%');
        let code = chars.next();
        let replacement = match (sigil, code) {
            ('%', Some('d')) => vars.dir.as_str(),
            ('%', Some('n')) => vars.stem.as_str(),
            ('%', Some('s')) => vars.name.as_str(),
            ('%', Some('p')) => vars.full.as_str(),
            ('%', Some('c')) => vars.dir_name.as_str(),
            ('%', Some('%')) => "%",
            ('%', Some(c)) => {
                return Err(format!(
                    "%{c}: a uWSGI magic variable rwsgi does not expand"
                ))
            }
            // A lone `%` at the end, or a `$` not starting $(...): literal.
            (c, _) => {
                out.push(c);
                rest = &tail[c.len_utf8()..];
                continue;
            }
        };
        out.push_str(replacement);
        rest = &tail[2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> FileVars {
        FileVars {
            dir: "/srv/mysite/".into(),
            stem: "uwsgi".into(),
            name: "uwsgi.ini".into(),
            full: "/srv/mysite/uwsgi.ini".into(),
            dir_name: "mysite".into(),
        }
    }

    #[test]
    fn substitutions() {
        let env = [("HOME".to_string(), "/home/me".to_string())];
        let seen = [("project".to_string(), "mysite".to_string())];
        let s = |v: &str| substitute(v, &vars(), &env, &seen);
        assert_eq!(s("%dvenv").unwrap(), "/srv/mysite/venv");
        assert_eq!(s("/run/%n.sock").unwrap(), "/run/uwsgi.sock");
        assert_eq!(
            s("%(project).wsgi:application").unwrap(),
            "mysite.wsgi:application"
        );
        assert_eq!(
            s("$(HOME)/x 100%% %c %s").unwrap(),
            "/home/me/x 100% mysite uwsgi.ini"
        );
        assert_eq!(s("a$b%").unwrap(), "a$b%");
        assert!(s("$(NOPE)").unwrap_err().contains("NOPE"));
        assert!(s("%(nope)").unwrap_err().contains("nope"));
        assert!(s("%k").unwrap_err().contains("%k"));
    }

    #[test]
    fn only_the_uwsgi_section_is_read() {
        let lines = section("[other]\na = 1\n[uwsgi]\n; c\n# c\nmaster\nprocesses = 4 \n");
        let got: Vec<_> = lines
            .iter()
            .map(|l| (l.no, l.key.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(got, [(6, "master", ""), (7, "processes", "4")]);
        assert!(restated("plugins", "python3,python"));
        assert!(!restated("plugins", "python3,router_cache"));
    }

    #[test]
    fn keys_map_through_the_flags_names_and_aliases() {
        let path = std::env::temp_dir().join(format!("rwsgi-ini-{}.ini", std::process::id()));
        let text = "[uwsgi]\nworkers = 3\nhttp-socket = :1\nhttp = :2\nvirtualenv = /v\n\
                    chmod-socket =\nvacuum = off\nmaster = true\n";
        std::fs::write(&path, text).expect("write");
        let got = load(&path, &[]);
        let _ = std::fs::remove_file(&path);
        let Ok(got) = got else { panic!("refused") };
        let got: Vec<_> = got
            .iter()
            .map(|s| {
                (
                    s.key,
                    s.values.join(","),
                    s.source.rsplit(':').next().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("processes", "3".to_string(), "2"),
                ("http", ":1,:2".to_string(), "4"),
                ("home", "/v".to_string(), "5"),
                ("chmod-socket", String::new(), "6"),
                ("vacuum", "false".to_string(), "7"),
            ]
        );
    }
}
