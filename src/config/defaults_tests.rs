//! Every option's documented default is the one in force: the default a
//! flag's help states (which `--check-config` and the man page repeat) is
//! passed explicitly, and the configuration must come out the same as with
//! the flag left out. A default written one way in the help and another way
//! in the code fails here, naming the option.

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

#[test]
fn every_stated_default_is_the_default_in_force() {
    let plain = config(&[]);
    let mut checked = 0;
    let mut cmd = Cli::command();
    cmd.build();
    for arg in cmd.get_arguments() {
        let (Some(long), Some(help)) = (arg.get_long(), arg.get_help()) else {
            continue;
        };
        let help = help.to_string();
        let Some(default) = help
            .split("[default: ")
            .nth(1)
            .and_then(|d| d.split(']').next())
        else {
            continue;
        };
        // Switches (no value), descriptions rather than values, and values
        // meant only for the bare flag are not passable defaults.
        let takes_value = arg.get_action().takes_values();
        if !takes_value || default.contains(' ') || long == "http" {
            continue;
        }
        let flag = format!("--{long}");
        assert_eq!(
            config(&[&flag, default]),
            plain,
            "--{long}: its help says the default is {default:?}, but passing that changes the configuration"
        );
        checked += 1;
    }
    assert!(
        checked >= 20,
        "only {checked} options with a stated default"
    );
}
