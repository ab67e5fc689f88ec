//! The TOML configuration file: options grouped in tables (`[server]`,
//! `[app]`, `[workers]`, `[limits]`, `[log]`) under their flag names. Every
//! mistake is reported with the file, the line, the key and the fix.

use std::path::Path;

use super::layers::{LoadError, Setting};
use super::schema::{self, Kind};
use super::ConfigError;

fn fail<T>(msg: String) -> Result<T, LoadError> {
    Err(LoadError::Config(ConfigError::Source(msg)))
}

/// Where each key is written (1-based lines), from the parser's spans:
/// `("", table)` for a table (its header, or its first dotted or inline
/// use), `(table, key)` for a key in it, however it was written.
struct Lines {
    at: std::collections::HashMap<(String, String), usize>,
}

impl Lines {
    fn of(text: &str) -> Lines {
        use toml::de::{DeTable, DeValue};
        // Line starts, once: a span's line is a binary search, not a scan
        // of the text before it (a large file has many keys).
        let breaks: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
        let line = |pos: usize| breaks.partition_point(|&b| b < pos) + 1;
        let mut at = std::collections::HashMap::new();
        if let Ok(doc) = DeTable::parse(text) {
            for (table, body) in doc.get_ref().iter() {
                let name = table.get_ref().to_string();
                at.insert((String::new(), name.clone()), line(table.span().start));
                if let DeValue::Table(items) = body.get_ref() {
                    for (key, _) in items.iter() {
                        let k = (name.clone(), key.get_ref().to_string());
                        at.insert(k, line(key.span().start));
                    }
                }
            }
        }
        Lines { at }
    }

    /// The line of `key` in `[table]` ("" for a top-level key); 0 if unknown.
    fn get(&self, table: &str, key: &str) -> usize {
        let k = (table.to_string(), key.to_string());
        self.at.get(&k).copied().unwrap_or(0)
    }
}

/// `file:line`, or just the file when the line is not found.
fn located(shown: &dyn std::fmt::Display, line: usize) -> String {
    match line {
        0 => shown.to_string(),
        n => format!("{shown}:{n}"),
    }
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "a number",
        toml::Value::Float(_) => "a decimal number",
        toml::Value::Boolean(_) => "true/false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// The largest configuration file read: real ones are a few KiB, and
/// `--config /dev/zero` must fail at once rather than fill memory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The file's text, refused past [`MAX_FILE_BYTES`] or if not UTF-8.
fn read_capped(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {MAX_FILE_BYTES} bytes (1 MiB), the most rwsgi reads; \
                 is this the configuration file?"
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text (TOML is UTF-8)",
        )
    })
}

/// What to say about a file that looks like a uWSGI ini.
const INI_HINT: &str = "this looks like a uWSGI ini file: run it with --ini FILE (and \
    --ini FILE --check-config prints it as rwsgi TOML); --config reads TOML, see rwsgi.toml(5)";

/// Reads and checks the file; returns its settings in schema order.
/// `named_by`: how the file was named (`--config`, or `RWSGI_CONFIG=`), for
/// an error reading it.
pub fn load(path: &Path, named_by: &str) -> Result<Vec<Setting>, LoadError> {
    let shown = path.display();
    let text = match read_capped(path) {
        Ok(t) => t,
        Err(e) => return fail(format!("{named_by}{shown}: {e}")),
    };
    let doc: toml::Table = match text.parse() {
        Ok(d) => d,
        Err(e) => {
            // Line and column (1-based) of where the parser stopped.
            let at = e.span().map_or(String::new(), |s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let column = before[line_start..].chars().count() + 1;
                format!(":{line}:{column}")
            });
            // A uWSGI ini file is the likely mistake: say so.
            let ini = path.extension().is_some_and(|x| x == "ini")
                || text.trim_start().starts_with("[uwsgi]");
            let hint = if ini {
                format!(" ({INI_HINT})")
            } else {
                String::new()
            };
            return fail(format!(
                "{shown}{at}: not valid TOML: {}{hint}",
                e.message().trim_end()
            ));
        }
    };
    let lines = Lines::of(&text);
    let mut out = Vec::new();
    for (table, body) in &doc {
        let Some(items) = body.as_table() else {
            let at = located(&shown, lines.get("", table));
            let tables = body.as_array().filter(|a| !a.is_empty());
            if tables.is_some_and(|a| a.iter().all(|v| v.is_table())) {
                return fail(format!(
                    "{at}: [[{table}]] is an array of tables; write the table once: [{table}]"
                ));
            }
            let hint = match schema::find(table) {
                Some((t, k, _)) => format!("; put it in the [{t}] table: [{t}] {k} = ..."),
                None => {
                    "; options go in tables: [server], [app], [workers], [limits], [log], [static]"
                        .into()
                }
            };
            return fail(format!("{at}: unknown top-level key \"{table}\"{hint}"));
        };
        if table == "uwsgi" {
            return fail(format!("{shown}: a [uwsgi] table: {INI_HINT}"));
        }
        let known_table = schema::options().iter().any(|(t, _, _)| t == table);
        for (key, value) in items {
            let at = located(&shown, lines.get(table, key));
            if value.is_table() {
                let tables = schema::options().iter().map(|(t, _, _)| *t);
                let is_table = tables.clone().any(|t| t == key);
                return fail(if is_table {
                    format!("{at}: [{key}] inside [{table}]: write its options in its own table, [{key}]")
                } else {
                    format!(
                        "{at}: [{table}] {key} is a table; options are plain keys: {key} = value"
                    )
                });
            }
            let key = &super::static_map::file_key(table, key).into_owned();
            let Some((want_table, name, kind)) = schema::find(key) else {
                let compat = crate::cli::COMPAT_FLAGS.contains(&key.as_str());
                let hint = if compat {
                    format!(
                        "; uWSGI's {key} is what rwsgi always does, so it is not a key \
                         (leave it out; --{key} is accepted as a flag)"
                    )
                } else {
                    key_hint(key)
                        .or_else(|| schema::suggest(key).map(|k| format!("did you mean \"{k}\"?")))
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default()
                };
                return fail(format!("{at}: unknown key \"{key}\" in [{table}]{hint}"));
            };
            if !known_table || want_table != table {
                return fail(format!(
                    "{at}: \"{key}\" belongs in the [{want_table}] table, not [{table}]"
                ));
            }
            if matches!(name, "umask" | "chmod-socket") && value.is_integer() {
                return fail(format!(
                    "{at}: [{table}] {key} is an octal mode: quote it, e.g. {key} = \"{}\" \
                     (a TOML number such as 0o660 or 660 is not read as octal)",
                    if name == "umask" { "022" } else { "660" }
                ));
            }
            let values = convert(value, kind).map_err(|why| {
                let not = match value.as_integer() {
                    Some(n) if n < 0 => n.to_string(),
                    _ => type_name(value).to_string(),
                };
                LoadError::Config(ConfigError::Source(format!(
                    "{at}: [{table}] {key} {why}, not {not}"
                )))
            })?;
            // `max_requests` and `max-requests` (or `map` and `static-map`)
            // are one option: TOML sees two keys, we would keep one silently.
            if let Some(first) = out.iter().find(|s: &&Setting| s.key == name) {
                return fail(format!(
                    "{at}: [{table}] {key} sets {name}, as {} does too; keep one",
                    first.source
                ));
            }
            out.push(Setting {
                key: name,
                values,
                source: at,
            });
        }
    }
    Ok(out)
}

/// What to say about a key that is another tool's option or a flag alias.
fn key_hint(key: &str) -> Option<String> {
    let key = key.replace('_', "-");
    if let Some(h) = crate::cli_hints::for_key(&key) {
        return Some(format!("{key} is not an rwsgi option: {h}"));
    }
    schema::alias_of(&key)
        .map(|k| format!("the key is \"{k}\" (--{key} is its alias on the command line)"))
}

/// A TOML value as flag values, or what was expected.
fn convert(v: &toml::Value, kind: Kind) -> Result<Vec<String>, &'static str> {
    match (kind, v) {
        (Kind::Bool, toml::Value::Boolean(b)) => Ok(vec![b.to_string()]),
        (Kind::Bool, _) => Err("must be true or false"),
        (Kind::Int, toml::Value::Integer(n)) if *n >= 0 => Ok(vec![n.to_string()]),
        (Kind::Int, _) => Err("must be a whole number (0 or more)"),
        (Kind::Str, toml::Value::String(s)) => Ok(vec![s.clone()]),
        // Numbers where a string is expected are fine (e.g. chmod-socket = 660).
        (Kind::Str, toml::Value::Integer(n)) => Ok(vec![n.to_string()]),
        (Kind::Str, _) => Err("must be a string"),
        (Kind::List, toml::Value::String(s)) => Ok(vec![s.clone()]),
        (Kind::List, toml::Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .ok_or("must be a string or an array of strings")
            })
            .collect(),
        (Kind::List, _) => Err("must be a string or an array of strings"),
    }
}
