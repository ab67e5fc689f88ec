//! `wsgi.errors`: what the app writes there goes to the server log, a line at
//! a time, tagged with the worker's pid by the log format.
//!
//! The stream is the app's, not a channel for errors only (Flask's default
//! log handler writes every record there), so a line is logged under the
//! `app` target at the level it names itself — `INFO in app: …`,
//! `WARNING:root:…` — and at INFO when it names none. All lines of one
//! `write()` share the first line's level: a logged traceback is one write.
//! `RUST_LOG=app=warn` filters them like any other target.

use log::Level;
use pyo3::prelude::*;

/// The log target of app output (for `RUST_LOG=app=...`).
pub const TARGET: &str = "app";

#[pyclass(module = "rwsgi", name = "Errors")]
pub struct Errors {
    partial: String,
    /// The level of the line being assembled in `partial`.
    level: Level,
}

impl Errors {
    pub fn new() -> Errors {
        Errors {
            partial: String::new(),
            level: Level::Info,
        }
    }
}

/// The level a line of app output names, if any: its first word, after an
/// optional leading `[timestamp]`, split at spaces and colons. Python's
/// logging formats put the level there (`%(levelname)s` first, or after
/// `[%(asctime)s]` as Flask does).
pub fn level_of(line: &str) -> Option<Level> {
    let mut rest = line.trim_start();
    if let Some(after) = rest.strip_prefix('[') {
        rest = after.split_once(']').map_or("", |(_, r)| r).trim_start();
    }
    let word = rest.split([' ', ':', '\t']).next().unwrap_or("");
    match word {
        "CRITICAL" | "FATAL" | "ERROR" => Some(Level::Error),
        "WARNING" | "WARN" => Some(Level::Warn),
        "INFO" => Some(Level::Info),
        "DEBUG" => Some(Level::Debug),
        _ => None,
    }
}

#[pymethods]
impl Errors {
    fn write(&mut self, s: &str) -> usize {
        if self.partial.is_empty() {
            self.level = level_of(s).unwrap_or(Level::Info);
        }
        self.partial.push_str(s);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            log::log!(target: TARGET, self.level, "{}", line.trim_end_matches('\n'));
        }
        s.chars().count()
    }

    fn writelines(&mut self, lines: Vec<String>) {
        for l in lines {
            self.write(&l);
        }
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            log::log!(target: TARGET, self.level, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_is_the_one_the_line_names() {
        let flask = "[2026-12-03 11:00:00,123] INFO in app: hello";
        assert_eq!(level_of(flask), Some(Level::Info));
        assert_eq!(
            level_of("[x] ERROR in app: Exception on / [GET]"),
            Some(Level::Error)
        );
        assert_eq!(level_of("WARNING:root:careful"), Some(Level::Warn));
        assert_eq!(level_of("CRITICAL:db:gone"), Some(Level::Error));
        assert_eq!(level_of("DEBUG x"), Some(Level::Debug));
        assert_eq!(level_of("just some text"), None);
        assert_eq!(level_of("Traceback (most recent call last):"), None);
        assert_eq!(level_of("[unterminated"), None);
        assert_eq!(level_of(""), None);
    }
}
