//! Every option's default is written once, in its flag's definition
//! (`default_value` in `cli.rs`), which `--help`, the configuration and
//! `--check-config` all read; the man pages are checked against
//! `--check-config` (tests/docs.rs). This test keeps a second copy from
//! creeping back: no help text states a value default by hand.

use clap::CommandFactory;

use crate::cli::Cli;

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
