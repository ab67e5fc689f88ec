//! The configuration schema: every option, the TOML table it lives in, and
//! its kind — read off the flag's definition in `cli` (its help heading
//! names the table; its action and value type give the kind), so an option
//! is defined once. The TOML file and the `RWSGI_*` environment use the same
//! names as the command-line flags, so one list serves all three layers.

use std::any::TypeId;
use std::sync::OnceLock;

use clap::{Arg, ArgAction, CommandFactory};

use crate::cli;

/// What values an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A switch: `true` turns it on.
    Bool,
    /// A whole number (>= 0).
    Int,
    Str,
    /// Repeatable: a string or an array of strings.
    List,
}

/// The tables, in the order `--check-config` prints them, with the help
/// heading of their flags.
const TABLES: &[(&str, &str)] = &[
    ("server", cli::SERVER),
    ("app", cli::APP),
    ("workers", cli::WORKERS),
    ("limits", cli::LIMITS),
    ("log", cli::LOG),
    ("static", cli::STATIC),
];

/// The clap command, built once: the options' names borrow from it.
fn command() -> &'static clap::Command {
    static COMMAND: OnceLock<clap::Command> = OnceLock::new();
    COMMAND.get_or_init(|| {
        let mut cmd = cli::Cli::command();
        cmd.build();
        cmd
    })
}

/// Every option as (table, key, kind), keys being the long flag names;
/// table by table, in flag order within one.
pub fn options() -> &'static [(&'static str, &'static str, Kind)] {
    static OPTIONS: OnceLock<Vec<(&'static str, &'static str, Kind)>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut all: Vec<_> = command()
            .get_arguments()
            .filter_map(|arg| {
                let heading = arg.get_help_heading()?;
                let table = TABLES.iter().position(|(_, h)| *h == heading)?;
                Some((table, arg.get_long()?, kind_of(arg)))
            })
            .collect();
        all.sort_by_key(|(table, _, _)| *table);
        all.into_iter()
            .map(|(table, key, kind)| (TABLES[table].0, key, kind))
            .collect()
    })
}

/// The flag `--key`'s definition (its help, default, aliases).
pub fn flag(key: &str) -> Option<&'static Arg> {
    command()
        .get_arguments()
        .find(|a| a.get_long() == Some(key))
}

fn kind_of(arg: &Arg) -> Kind {
    let ty = arg.get_value_parser().type_id();
    match arg.get_action() {
        ArgAction::SetTrue => Kind::Bool,
        ArgAction::Append => Kind::List,
        _ if ty == TypeId::of::<u64>()
            || ty == TypeId::of::<usize>()
            || ty == TypeId::of::<u32>() =>
        {
            Kind::Int
        }
        _ => Kind::Str,
    }
}

/// The option `key` (dashes or underscores), with its table and kind.
pub fn find(key: &str) -> Option<(&'static str, &'static str, Kind)> {
    let key = key.replace('_', "-");
    options().iter().find(|(_, k, _)| *k == key).copied()
}

/// The closest option name, for "did you mean" (only a close one).
pub fn suggest(key: &str) -> Option<&'static str> {
    let key = key.replace('_', "-");
    crate::cli_hints::closest(&key, options().iter().map(|(_, k, _)| *k))
}

/// The option a flag alias stands for (`workers` -> `processes`): files and
/// variables take only the option's own name.
pub fn alias_of(key: &str) -> Option<&'static str> {
    let arg = command()
        .get_arguments()
        .find(|a| a.get_all_aliases().unwrap_or_default().contains(&key))?;
    find(arg.get_long()?).map(|(_, k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_suggestions() {
        assert_eq!(find("max_requests").map(|o| o.0), Some("workers"));
        assert_eq!(suggest("proceses"), Some("processes"));
        assert_eq!(suggest("htp"), Some("http"));
        assert_eq!(suggest("completely-unrelated"), None);
        assert_eq!(alias_of("workers"), Some("processes"));
        assert_eq!(alias_of("processes"), None);
    }

    /// A flag is an option of the file and the environment unless it is
    /// one of these: a new flag without a table heading fails here rather
    /// than be silently missing from rwsgi.toml.
    #[test]
    fn every_flag_but_the_command_line_ones_is_an_option() {
        let command_line_only = ["config", "ini", "check-config", "help", "version"];
        for arg in command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let listed = options().iter().any(|(_, k, _)| *k == long);
            let compat = cli::COMPAT_FLAGS.contains(&long);
            assert!(
                listed != (command_line_only.contains(&long) || compat),
                "--{long}: give it a table's help heading (cli::SERVER …), or list it here"
            );
        }
    }

    #[test]
    fn kinds_and_tables_come_from_the_flags() {
        let of = |k: &str| find(k).map(|(t, _, kind)| (t, kind));
        assert_eq!(of("http"), Some(("server", Kind::List)));
        assert_eq!(of("vacuum"), Some(("server", Kind::Bool)));
        assert_eq!(of("listen"), Some(("server", Kind::Int)));
        assert_eq!(of("chmod-socket"), Some(("server", Kind::Str)));
        assert_eq!(of("pythonpath"), Some(("app", Kind::List)));
        assert_eq!(of("processes"), Some(("workers", Kind::Int)));
        assert_eq!(of("buffer-size"), Some(("limits", Kind::Int)));
        assert_eq!(of("logto"), Some(("log", Kind::Str)));
        assert_eq!(of("static-expires"), Some(("static", Kind::Int)));
        let tables: Vec<&str> = options().iter().map(|(t, _, _)| *t).collect();
        let mut grouped = tables.clone();
        grouped.dedup();
        assert_eq!(grouped.len(), TABLES.len(), "each table's options together");
    }
}
