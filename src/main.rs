//! rwsgi: parse the flags, load the configuration, run the master, exit.

use clap::Parser;
use rwsgi::master::endpoints::Kind;
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
    let mut endpoints = Vec::new();
    let wanted = [
        config.stats.as_ref().map(|(a, http)| {
            let kind = if *http { Kind::StatsHttp } else { Kind::Stats };
            (kind, a)
        }),
        config.metrics.as_ref().map(|a| (Kind::Metrics, a)),
    ];
    for (kind, addr) in wanted.into_iter().flatten() {
        match socket::bind_endpoint(addr, &config.unix) {
            Ok(l) => {
                ::log::info!("{kind:?} endpoint on {} (fd {})", l.addr, l.raw_fd());
                endpoints.push((kind, l));
            }
            Err(e) => {
                ::log::error!("{e}");
                std::process::exit(EXIT_SOCKET);
            }
        }
    }
    let master = match master::Master::new(config, listeners, endpoints, worker::entry) {
        Ok(m) => m,
        Err(e) => {
            ::log::error!("cannot start the master: {e}");
            std::process::exit(1);
        }
    };
    std::process::exit(master.run());
}
