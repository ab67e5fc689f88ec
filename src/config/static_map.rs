//! `--static-map URL_PREFIX=DIR`, `--static-index FILE` and
//! `--static-expires SECONDS`: parsed and checked at start, so a typo is an
//! error naming the flag and the fix, not a 404 later.

use std::path::PathBuf;

use super::ConfigError;

/// The static map as the workers open it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticMap {
    /// (URL prefix, absolute directory), in the order given.
    pub map: Vec<(String, PathBuf)>,
    pub index: Option<String>,
    pub expires: Option<u64>,
}

/// The flag a key of the `[static]` table stands for: `map`, `index` and
/// `expires` read as `static-map`, `static-index` and `static-expires`.
pub fn file_key<'a>(table: &str, key: &'a str) -> std::borrow::Cow<'a, str> {
    match (table, key) {
        ("static", "map" | "index" | "expires") => format!("static-{key}").into(),
        _ => key.into(),
    }
}

impl StaticMap {
    /// One message per mapped directory that does not exist.
    pub fn missing(&self) -> Vec<String> {
        self.map
            .iter()
            .filter(|(_, dir)| {
                std::fs::metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            })
            .map(|(prefix, dir)| {
                format!(
                    "--static-map {prefix}={}: directory {} does not exist; create it first \
                     (for Django, run `manage.py collectstatic`) or fix the path",
                    dir.display(),
                    dir.display()
                )
            })
            .collect()
    }
}

/// The reverse of [`file_key`], for `--check-config`'s report: the
/// `[static]` keys as the file writes them.
pub fn short_key<'a>(table: &str, key: &'a str) -> &'a str {
    match table {
        "static" => key.strip_prefix("static-").unwrap_or(key),
        _ => key,
    }
}

fn err<T>(msg: String) -> Result<T, ConfigError> {
    Err(ConfigError::invalid(msg))
}

/// Checks the three flags; relative directories are the start directory's.
pub fn parse(
    map: &[String],
    index: Option<&str>,
    expires: Option<u64>,
) -> Result<StaticMap, ConfigError> {
    let mut out = StaticMap::default();
    for entry in map {
        let Some((prefix, dir)) = entry.split_once('=') else {
            return err(format!(
                "--static-map {entry:?}: expected URL_PREFIX=DIR, e.g. /static=/srv/app/staticroot"
            ));
        };
        let prefix = prefix.trim();
        let dir = dir.trim();
        if !prefix.starts_with('/') {
            return err(format!(
                "--static-map {entry:?}: the URL prefix must start with '/', e.g. /{}={dir}",
                prefix.trim_start_matches('/')
            ));
        }
        let bad_char = prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%' | '\\'));
        if bad_char || prefix.split('/').any(|s| s == "." || s == "..") {
            return err(format!(
                "--static-map {entry:?}: the URL prefix must be a plain path (no spaces, \
                 '?', '#', '%', '\\', '.' or '..' segments)"
            ));
        }
        if dir.is_empty() {
            return err(format!(
                "--static-map {entry:?}: no directory after '='; give the directory to serve"
            ));
        }
        let path = std::path::absolute(dir).unwrap_or_else(|_| PathBuf::from(dir));
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            // Refused at start, only a warning for --check-config (a deploy
            // may check before collectstatic): see `missing`.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Ok(_) => {
                return err(format!(
                    "--static-map {entry:?}: {} is not a directory; map a directory \
                     (e.g. Django's STATIC_ROOT after collectstatic)",
                    path.display()
                ))
            }
            Err(e) => {
                return err(format!(
                    "--static-map {entry:?}: directory {}: {e}; create it (for Django, run \
                     `manage.py collectstatic`) or fix the path",
                    path.display()
                ))
            }
        }
        let norm = crate::static_files::normalise_prefix(prefix);
        if out
            .map
            .iter()
            .any(|(p, _)| crate::static_files::normalise_prefix(p) == norm)
        {
            return err(format!(
                "--static-map {entry:?}: the prefix {prefix} is mapped twice; keep one"
            ));
        }
        out.map.push((prefix.to_string(), path));
    }
    if let Some(name) = index {
        if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
            return err(format!(
                "--static-index {name:?}: give a plain file name such as index.html"
            ));
        }
        if map.is_empty() {
            return err("--static-index needs --static-map URL_PREFIX=DIR".to_string());
        }
        out.index = Some(name.to_string());
    }
    if let Some(secs) = expires {
        if map.is_empty() {
            return err("--static-expires needs --static-map URL_PREFIX=DIR".to_string());
        }
        out.expires = Some(secs);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_prefixes_and_directories() {
        let tmp = std::env::temp_dir();
        let t = tmp.display();
        let m = parse(
            &strings(&[&format!("/static={t}"), &format!("/media/ = {t}")]),
            Some("index.html"),
            Some(3600),
        )
        .unwrap();
        assert_eq!(m.map[0], ("/static".to_string(), tmp.clone()));
        assert_eq!(m.map[1].0, "/media/");
        assert_eq!(
            (m.index.as_deref(), m.expires),
            (Some("index.html"), Some(3600))
        );
        assert_eq!(file_key("static", "map"), "static-map");
        assert_eq!(file_key("server", "map"), "map");
        assert_eq!(short_key("static", "static-expires"), "expires");
        assert_eq!(short_key("log", "log-slow"), "log-slow");
        let gone = parse(&strings(&["/s=/nonexistent/rwsgi"]), None, None).unwrap();
        let missing = gone.missing();
        assert_eq!(missing.len(), 1);
        assert!(missing[0].starts_with("--static-map /s=/nonexistent/rwsgi: directory"));
        assert!(missing[0].contains("does not exist; create it first"));
        assert!(m.missing().is_empty());
    }

    #[test]
    fn errors_name_the_flag_and_fix() {
        let t = std::env::temp_dir().display().to_string();
        let file = format!("{}/rwsgi-static-map-test-file", t);
        std::fs::write(&file, b"x").unwrap();
        /// (--static-map values, --static-index, --static-expires, expected text)
        type Case<'a> = (Vec<String>, Option<&'a str>, Option<u64>, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (strings(&["/static"]), None, None, "URL_PREFIX=DIR"),
            (
                strings(&[&format!("static={t}")]),
                None,
                None,
                "must start with '/'",
            ),
            (
                strings(&[&format!("/a/../b={t}")]),
                None,
                None,
                "plain path",
            ),
            (strings(&[&format!("/a b={t}")]), None, None, "plain path"),
            (strings(&["/static="]), None, None, "no directory"),
            (
                strings(&[&format!("/s={file}")]),
                None,
                None,
                "not a directory",
            ),
            (
                strings(&[&format!("/s={t}"), &format!("/s/={t}")]),
                None,
                None,
                "mapped twice",
            ),
            (
                strings(&[&format!("/s={t}")]),
                Some("a/b"),
                None,
                "--static-index",
            ),
            (vec![], Some("index.html"), None, "needs --static-map"),
            (vec![], None, Some(60), "--static-expires needs"),
        ];
        for (map, index, expires, needle) in cases {
            let e = parse(&map, index, expires).unwrap_err();
            assert!(e.message().contains(needle), "{map:?}: {e}");
            assert!(e.message().starts_with("--static"), "{e}");
        }
        let _ = std::fs::remove_file(file);
    }
}
