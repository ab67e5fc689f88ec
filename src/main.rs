//! rwsgi: parse the flags, load the configuration, run the master, exit.

use clap::Parser;
use rwsgi::{cli, config, log, master, socket, sys, worker};

/// Exit codes (documented in rwsgi(1)).
const EXIT_CONFIG: i32 = 2;
const EXIT_SOCKET: i32 = 3;

fn main() {
    let cli = cli::Cli::parse();
    let config = match config::Config::from_cli(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rwsgi: {e}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    log::init(config.log_level);
    sys::raise_nofile_limit();
    let listeners = match socket::bind_all(&config.listen, config.backlog, &config.unix) {
        Ok(l) => l,
        Err(e) => {
            ::log::error!("{e}");
            std::process::exit(EXIT_SOCKET);
        }
    };
    for l in &listeners {
        ::log::info!(
            "listening on {}://{} (fd {})",
            l.protocol.name(),
            l.addr,
            l.raw_fd()
        );
    }
    let master = match master::Master::new(config, listeners, worker::entry) {
        Ok(m) => m,
        Err(e) => {
            ::log::error!("cannot start the master: {e}");
            std::process::exit(1);
        }
    };
    std::process::exit(master.run());
}
