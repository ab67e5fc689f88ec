//! Merging the configuration layers, lowest first: built-in defaults, the
//! platform's `WEB_CONCURRENCY`/`PORT`, the TOML file (`--config` or
//! `RWSGI_CONFIG`), the `RWSGI_*` environment, the command line.
//!
//! Each lower layer becomes flag arguments placed before the real command
//! line, and clap parses the lot with later values winning, so every layer
//! goes through the same parsing and validation as the flags. A repeatable
//! option (like `http`) is taken whole from the highest layer that sets it.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use super::schema::{self, Kind};
use super::ConfigError;
use crate::cli::Cli;

/// The parsed command line with every layer applied, and where each option
/// got its value.
pub struct Layered {
    pub cli: Cli,
    pub provenance: Provenance,
}

/// Where the effective options came from.
pub struct Provenance {
    /// Option key -> "command line", "env RWSGI_X", "FILE:LINE", ...
    pub sources: BTreeMap<&'static str, String>,
    /// Warnings to log once logging is up (e.g. unknown RWSGI_* variables).
    pub warnings: Vec<String>,
    /// Option key -> its effective raw values (options set by some layer).
    pub values: BTreeMap<&'static str, Vec<String>>,
    /// The configuration file, if one was read.
    pub file: Option<std::path::PathBuf>,
    /// That file is a uWSGI ini (`--ini`), not rwsgi TOML.
    pub from_ini: bool,
}

/// Why the layers could not be merged.
pub enum LoadError {
    /// A command-line error (or --help/--version): clap prints it.
    Clap(clap::Error),
    Config(ConfigError),
}

/// One option set by a lower layer.
pub(super) struct Setting {
    pub(super) key: &'static str,
    pub(super) values: Vec<String>,
    pub(super) source: String,
}

fn err<T>(msg: String) -> Result<T, LoadError> {
    Err(LoadError::Config(ConfigError::Source(msg)))
}

/// Merges all layers. `env` is the process environment.
pub fn load(args: Vec<OsString>, env: &[(String, String)]) -> Result<Layered, LoadError> {
    let cmd = || Cli::command().args_override_self(true);
    let first = cmd().try_get_matches_from(&args).map_err(LoadError::Clap)?;
    let on_cli =
        |key: &str| first.value_source(&key.replace('-', "_")) == Some(ValueSource::CommandLine);
    let getenv = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());

    let mut warnings = Vec::new();
    // clap reads RWSGI_CONFIG itself (`env` on the flag).
    // --ini replaces a TOML file named by RWSGI_CONFIG (a flag beats the
    // environment), not one named by --config.
    let ini_path = first.get_one::<std::path::PathBuf>("ini").cloned();
    let from_ini = ini_path.is_some();
    if from_ini && on_cli("config") {
        return err("--ini and --config both given: rwsgi reads one file; choose one".into());
    }
    let config_path = ini_path.or_else(|| first.get_one::<std::path::PathBuf>("config").cloned());
    let file = match &config_path {
        Some(path) if from_ini => super::ini::load(path, env)?,
        Some(path) => {
            let from_env = first.value_source("config") == Some(ValueSource::EnvVariable);
            super::file::load(
                path,
                if from_env {
                    "RWSGI_CONFIG="
                } else {
                    "--config "
                },
            )?
        }
        None => Vec::new(),
    };
    let env_layer = from_env(env, &mut warnings)?;
    let platform = from_platform(&getenv);

    // Highest layer first when deciding who owns a key.
    let layers = [&env_layer, &file, &platform];
    let mut argv: Vec<OsString> = vec![args.first().cloned().unwrap_or_else(|| "rwsgi".into())];
    let mut sources = BTreeMap::new();
    let mut owned: Vec<&str> = Vec::new();
    for (_, key, _) in schema::options() {
        if on_cli(key) {
            sources.insert(*key, "command line".to_string());
            owned.extend(with_alternatives(key));
        }
    }
    // `http` and `socket` together decide where to listen: a higher layer
    // naming either replaces the PORT default.
    let listens_above_platform = ["http", "socket"]
        .iter()
        .any(|k| on_cli(k) || env_layer.iter().chain(&file).any(|s| s.key == *k));
    let mut lower_args: Vec<Vec<OsString>> = Vec::new();
    for layer in layers {
        let mut this = Vec::new();
        for s in layer.iter() {
            if owned.contains(&s.key) {
                continue;
            }
            if std::ptr::eq(layer, &platform) && s.key == "http" && listens_above_platform {
                continue;
            }
            sources.insert(s.key, s.source.clone());
            for v in &s.values {
                push_arg(&mut this, s.key, v);
            }
        }
        owned.extend(layer.iter().flat_map(|s| with_alternatives(s.key)));
        lower_args.push(this);
    }
    for a in lower_args.into_iter().rev() {
        argv.extend(a);
    }
    let args_len = args.len();
    argv.extend(args.into_iter().skip(1));
    let matches = match cmd().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => return Err(blame(e, &argv, &sources, &args_len)),
    };
    let mut cli = Cli::from_arg_matches(&matches).map_err(LoadError::Clap)?;
    let mut values = BTreeMap::new();
    for (_, key, kind) in schema::options() {
        let id = key.replace('-', "_");
        if matches.value_source(&id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let v: Vec<String> = match kind {
            Kind::Bool => vec!["true".to_string()],
            _ => matches
                .get_raw(&id)
                .map(|r| r.map(|s| s.to_string_lossy().into_owned()).collect())
                .unwrap_or_default(),
        };
        values.insert(*key, v);
    }
    if let Some(app) = cli.app.take() {
        place_app(&mut cli, app, &mut values, &mut sources)?;
    }
    Ok(Layered {
        cli,
        provenance: Provenance {
            sources,
            warnings,
            values,
            file: config_path,
            from_ini,
        },
    })
}

/// Options that name the same thing in different ways: a layer that sets
/// one overrides the others set by a lower layer (`--wsgi-file` on the
/// command line replaces a file's `module`); both in one layer still
/// conflict.
const ALTERNATIVES: &[&[&str]] = &[&["module", "wsgi-file"]];

/// `key` and the options it replaces when a higher layer sets it.
fn with_alternatives(key: &'static str) -> Vec<&'static str> {
    match ALTERNATIVES.iter().find(|group| group.contains(&key)) {
        Some(group) => group.to_vec(),
        None => vec![key],
    }
}

/// The positional APP (Gunicorn's form) becomes `--module` or, for a path
/// or a `.py` file, `--wsgi-file`; it replaces an app a file or variable
/// names, as any command-line flag would.
fn place_app(
    cli: &mut Cli,
    app: String,
    values: &mut BTreeMap<&'static str, Vec<String>>,
    sources: &mut BTreeMap<&'static str, String>,
) -> Result<(), LoadError> {
    let on_cli = |k: &str| sources.get(k).is_some_and(|s| s == "command line");
    if on_cli("module") || on_cli("wsgi-file") {
        let given = match (&cli.module, &cli.wsgi_file) {
            (Some(m), _) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => {
                return err(format!(
                    "-w {m} looks like Gunicorn's worker count: rwsgi's -w is uWSGI's \
                     --module (the app is {app}); for {m} workers use --processes {m} (-p)"
                ))
            }
            (Some(m), _) => format!("--module {m}"),
            (None, Some(f)) => format!("--wsgi-file {}", f.display()),
            (None, None) => String::new(),
        };
        return err(format!(
            "the app is given twice, as {app} and as {given}; keep one"
        ));
    }
    let key = if app.ends_with(".py") || app.contains('/') {
        cli.wsgi_file = Some(app.clone().into());
        cli.module = None;
        "wsgi-file"
    } else {
        cli.module = Some(app.clone());
        cli.wsgi_file = None;
        "module"
    };
    for k in ["module", "wsgi-file"] {
        values.remove(k);
        sources.remove(k);
    }
    values.insert(key, vec![app]);
    sources.insert(key, "command line".to_string());
    Ok(())
}

/// A value clap refused: if it came from the file or the environment, say
/// which line or variable, by finding the one lower-layer argument that
/// clap refuses on its own.
fn blame(
    e: clap::Error,
    argv: &[OsString],
    sources: &BTreeMap<&'static str, String>,
    args_len: &usize,
) -> LoadError {
    let lower = &argv[1..argv.len() + 1 - args_len.max(&1)];
    for arg in lower {
        let one = [OsString::from("rwsgi"), arg.clone()];
        if let Err(single) = Cli::command().try_get_matches_from(one) {
            let text = arg.to_string_lossy();
            let key = text
                .trim_start_matches("--")
                .split('=')
                .next()
                .unwrap_or("");
            if let Some(src) = sources.get(key) {
                // clap's first line, e.g. "invalid value 'many' for '--processes <N>': ..."
                let msg = single.to_string();
                let why = msg
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                return LoadError::Config(ConfigError::Source(format!("{src}: {key}: {why}")));
            }
        }
    }
    LoadError::Clap(e)
}

/// A setting as flag arguments; `false` switches add nothing.
fn push_arg(out: &mut Vec<OsString>, key: &str, value: &str) {
    match schema::find(key).map(|o| o.2) {
        Some(Kind::Bool) => {
            if value == "true" {
                out.push(format!("--{key}").into());
            }
        }
        // An empty value is the bare flag: its value when given alone
        // (`--chmod-socket`), or clap's "a value is required".
        _ if value.is_empty() => out.push(format!("--{key}").into()),
        _ => out.push(format!("--{key}={value}").into()),
    }
}

/// The option key an `RWSGI_*` variable names (not yet checked against
/// the options); None for a variable that is not one to read as an option.
fn env_key(name: &str) -> Option<String> {
    let opt = name.strip_prefix("RWSGI_")?;
    if opt == "CONFIG" || opt.starts_with("TEST_") || opt == "BIN" {
        return None; // the config path itself, and the test and bench scripts' own
    }
    if opt.starts_with("UPGRADE_") {
        return None; // what a master hands its successor on SIGUSR2 (master::upgrade)
    }
    Some(opt.to_ascii_lowercase().replace('_', "-"))
}

/// Variables read as an option's value (`RWSGI_<OPTION>`, and the
/// platform's `PORT` and `WEB_CONCURRENCY`): their values must be text.
pub fn sets_an_option(name: &str) -> bool {
    PLATFORM.contains(&name) || env_key(name).is_some_and(|k| schema::find(&k).is_some())
}

/// What platforms set: the worker count and the port.
const PLATFORM: [&str; 2] = ["WEB_CONCURRENCY", "PORT"];

/// `RWSGI_<OPTION>` variables; lists are comma-separated.
fn from_env(
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<Vec<Setting>, LoadError> {
    let mut out = Vec::new();
    for (name, value) in env {
        let Some(key) = env_key(name) else {
            continue;
        };
        let Some((_, key, kind)) = schema::find(&key) else {
            let var = |k: &str| format!("RWSGI_{}", k.to_ascii_uppercase().replace('-', "_"));
            let hint = if let Some(h) = crate::cli_hints::for_key(&key) {
                format!("; {h}")
            } else if let Some(k) = schema::alias_of(&key) {
                format!("; the variable is {}", var(k))
            } else if crate::cli::COMPAT_FLAGS.contains(&key.as_str()) {
                "; rwsgi always behaves so: leave it out".to_string()
            } else {
                schema::suggest(&key)
                    .map(|k| format!("; did you mean {}?", var(k)))
                    .unwrap_or_default()
            };
            warnings.push(format!(
                "environment variable {name} is not an rwsgi option (ignored){hint}"
            ));
            continue;
        };
        let values = match kind {
            Kind::Bool => match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => vec!["true".to_string()],
                "0" | "false" | "no" | "off" | "" => vec!["false".to_string()],
                _ => {
                    return err(format!(
                        "{name}={value:?}: expected true or false (1/0, yes/no)"
                    ))
                }
            },
            Kind::List => value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
                .collect(),
            Kind::Int | Kind::Str => vec![value.clone()],
        };
        out.push(Setting {
            key,
            values,
            source: format!("env {name}"),
        });
    }
    Ok(out)
}

/// What hosting platforms set: `WEB_CONCURRENCY` (processes) and `PORT`
/// (listen on all interfaces), used only when nothing else says otherwise.
fn from_platform(getenv: &dyn Fn(&str) -> Option<String>) -> Vec<Setting> {
    let mut out = Vec::new();
    if let Some(n) = getenv("WEB_CONCURRENCY").filter(|v| !v.trim().is_empty()) {
        out.push(Setting {
            key: "processes",
            values: vec![n.trim().to_string()],
            source: "env WEB_CONCURRENCY".into(),
        });
    }
    if let Some(port) = getenv("PORT").filter(|v| !v.trim().is_empty()) {
        out.push(Setting {
            key: "http",
            values: vec![format!(":{}", port.trim())],
            source: "env PORT".into(),
        });
    }
    out
}

/// Adds where an option came from to an invalid value, so a bad value in
/// a file points at the file and line.
pub fn annotate(e: ConfigError, sources: &BTreeMap<&'static str, String>) -> ConfigError {
    match e.option().and_then(|o| sources.get(o)) {
        Some(src) if src != "command line" => ConfigError::SetBy {
            source: src.clone(),
            error: Box::new(e),
        },
        _ => e,
    }
}

/// `--check-config`: the effective value of every option and where it came
/// from, as TOML the file could contain.
pub fn describe(layered: &Provenance) -> String {
    let mut out = String::new();
    match &layered.file {
        Some(p) if layered.from_ini => out.push_str(&format!(
            "## rwsgi's equivalent of the uWSGI ini file {} (save it as rwsgi.toml and run \
             rwsgi --config rwsgi.toml)\n",
            p.display()
        )),
        Some(p) => out.push_str(&format!("## configuration file: {}\n", p.display())),
        None => {}
    }
    let mut table = "";
    for (t, key, kind) in schema::options() {
        if *t != table {
            table = t;
            out.push_str(&format!("\n[{table}]\n"));
        }
        let line = match layered.values.get(key) {
            Some(v) => {
                let source = layered
                    .sources
                    .get(key)
                    .map_or("command line", String::as_str);
                let key = super::static_map::short_key(table, key);
                format!("{key} = {}  # {source}", toml_value(*kind, v))
            }
            // A layer set it to what passes no flag: a switch turned off,
            // or a list emptied (over a lower layer's value).
            None if layered.sources.contains_key(key)
                && matches!(kind, Kind::Bool | Kind::List) =>
            {
                let source = layered.sources.get(key).map_or("", String::as_str);
                let key = super::static_map::short_key(table, key);
                let off = if *kind == Kind::Bool { "false" } else { "[]" };
                format!("{key} = {off}  # {source}")
            }
            None => {
                // Every line stays valid TOML with one '#' removed: a
                // default is printed as the value the file would take, and
                // a note about an option without one starts with "##".
                let arg = schema::flag(key);
                let given = |v: &[clap::builder::OsStr]| {
                    v.iter()
                        .map(|d| d.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                };
                let default = arg
                    .map(|a| given(a.get_default_values()))
                    .unwrap_or_default();
                // What a help text says in words where no value is the
                // default ("the user's group", a bare flag's value).
                let help = arg
                    .and_then(|a| a.get_help().map(|h| h.to_string()))
                    .unwrap_or_default();
                let described = help
                    .split("[default: ")
                    .nth(1)
                    .and_then(|d| d.split(']').next());
                let key = super::static_map::short_key(table, key);
                match default.first() {
                    _ if *kind == Kind::Bool => format!("# {key} = false  # default"),
                    Some(_) => format!("# {key} = {}  # default", toml_value(*kind, &default)),
                    None if described.is_some() => {
                        format!("## {key} is not set ({})", described.unwrap_or_default())
                    }
                    None => format!("## {key} is not set"),
                }
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn toml_value(kind: Kind, v: &[String]) -> String {
    // toml's own quoting: Rust's {:?} escapes (\u{1b}) are not TOML.
    let quote = |s: &String| toml::Value::String(s.clone()).to_string();
    match kind {
        Kind::Bool => "true".to_string(),
        Kind::Int => v.last().cloned().unwrap_or_default(),
        Kind::Str => v.last().map(quote).unwrap_or_default(),
        Kind::List => format!("[{}]", v.iter().map(quote).collect::<Vec<_>>().join(", ")),
    }
}
