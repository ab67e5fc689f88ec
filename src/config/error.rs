//! What is wrong with a configuration, typed by where it was found, so the
//! caller can add where an option's value came from without reading text.

use std::fmt;

/// A configuration error: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// An option's value is wrong, or options do not go together. The
    /// message names `option` (the first flag it names, without dashes)
    /// and the fix.
    Invalid {
        option: Option<String>,
        message: String,
    },
    /// A configuration file (TOML or uWSGI ini) or an environment variable
    /// cannot be read as options; the message names the file and line, or
    /// the variable.
    Source(String),
    /// An [`Invalid`](ConfigError::Invalid) value that a file or the
    /// environment set: `source` says which (`rwsgi.toml line 3`).
    SetBy {
        error: Box<ConfigError>,
        source: String,
    },
}

impl ConfigError {
    /// An invalid option value; `message` starts with the flag it names
    /// (`--processes 0: ...`), or names none.
    pub fn invalid(message: impl Into<String>) -> ConfigError {
        let message = message.into();
        let option = message
            .split(|c: char| c.is_whitespace() || c == ':')
            .find_map(|w| w.strip_prefix("--"))
            .filter(|o| !o.is_empty())
            .map(str::to_string);
        ConfigError::Invalid { option, message }
    }

    /// The whole message, never cut (see `Display`), without its source.
    pub fn message(&self) -> &str {
        match self {
            ConfigError::Invalid { message, .. } | ConfigError::Source(message) => message,
            ConfigError::SetBy { error, .. } => error.message(),
        }
    }

    /// The option an invalid value belongs to.
    pub fn option(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { option, .. } => option.as_deref(),
            ConfigError::Source(_) => None,
            ConfigError::SetBy { error, .. } => error.option(),
        }
    }
}

/// A message that echoes a huge value (a 100 MB key in a file, say) is cut
/// in the middle: its start names the option, its end the fix.
fn write_cut(f: &mut fmt::Formatter<'_>, m: &str) -> fmt::Result {
    const KEEP: usize = 600;
    if m.len() <= 3 * KEEP {
        return f.write_str(m);
    }
    // (str::floor_char_boundary is newer than our rust-version.)
    let head = (0..=KEEP)
        .rev()
        .find(|&i| m.is_char_boundary(i))
        .unwrap_or(0);
    let tail = (m.len() - KEEP..=m.len())
        .find(|&i| m.is_char_boundary(i))
        .unwrap_or(m.len());
    write!(
        f,
        "{}[... {} bytes cut ...]{}",
        &m[..head],
        tail - head,
        &m[tail..]
    )
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid { message, .. } | ConfigError::Source(message) => {
                write_cut(f, message)
            }
            ConfigError::SetBy { error, source } => write!(f, "{error} (set by {source})"),
        }
    }
}

impl std::error::Error for ConfigError {}

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::invalid(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_value_is_not_echoed_whole() {
        let key = "k".repeat(10_000_000);
        let e = ConfigError::invalid(format!("--x {key}\u{e9}: unknown; the fix")).to_string();
        assert!(e.len() < 2000, "{} bytes", e.len());
        assert!(
            e.starts_with("--x kkk") && e.ends_with("kk\u{e9}: unknown; the fix"),
            "{e}"
        );
        assert!(e.contains("bytes cut"), "{e}");
    }

    #[test]
    fn an_invalid_value_knows_its_option() {
        assert_eq!(
            ConfigError::invalid("--processes 0: at least 1").option(),
            Some("processes")
        );
        assert_eq!(ConfigError::invalid("no flag here").option(), None);
        let set = ConfigError::SetBy {
            error: Box::new(ConfigError::invalid("--threads 0: at least 1")),
            source: "rwsgi.toml line 2".into(),
        };
        assert_eq!(set.option(), Some("threads"));
        assert_eq!(
            set.to_string(),
            "--threads 0: at least 1 (set by rwsgi.toml line 2)"
        );
    }
}
