//! Every option's default is written once, in its flag's definition
//! (`default_value` in `cli.rs`), which `--help`, the configuration and
//! `--check-config` all read; the man pages are checked against
//! `--check-config` (tests/docs.rs). These tests keep a second copy from
//! creeping back: no help text states a value default by hand, and each
//! default, passed explicitly, changes nothing.

use clap::{CommandFactory, Parser};

use super::Config;
use crate::cli::Cli;

const BASE: [&str; 5] = [
    "rwsgi",
    "--http",
    "127.0.0.1:0",
    "--wsgi-file",
    "etc/apps/hello.py",
];

fn config(extra: &[&str]) -> String {
    let mut argv: Vec<&str> = BASE.to_vec();
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let c = Config::from_cli(cli).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    format!("{c:?}")
}

fn built() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

#[test]
fn no_default_is_written_in_a_help_text() {
    for arg in built().get_arguments() {
        let (Some(long), Some(help)) = (arg.get_long(), arg.get_help()) else {
            continue;
        };
        let help = help.to_string();
        let Some(stated) = help.split("[default: ").nth(1) else {
            continue;
        };
        // Only a description may stand there ("the user's group", "666
        // when given without a value"): a value belongs in `default_value`.
        assert!(
            arg.get_default_values().is_empty() && stated.contains(' '),
            "--{long}: its help states a default ({stated:?}); give it default_value instead"
        );
    }
}

#[test]
fn every_default_passed_explicitly_changes_nothing() {
    let plain = config(&[]);
    let mut checked = 0;
    for arg in built().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let defaults = arg.get_default_values();
        // Switches default to false: passing the flag turns them on.
        if defaults.is_empty() || !arg.get_action().takes_values() {
            continue;
        }
        let flag = format!("--{long}");
        let value = defaults[0].to_string_lossy();
        assert_eq!(
            config(&[&flag, &value]),
            plain,
            "--{long}: its default is {value:?}, but passing that changes the configuration"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} options with a default");
}
