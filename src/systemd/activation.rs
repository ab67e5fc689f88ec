//! Socket activation: systemd (or any parent following its protocol) binds
//! the sockets and passes them as fds 3, 4, … with `LISTEN_FDS=<count>`,
//! `LISTEN_PID=<our pid>` and optionally `LISTEN_FDNAMES=a:b`.
//!
//! The rule that maps passed sockets to listeners (also in rwsgi(1), SYSTEMD):
//! - `--http fd://N` / `--socket fd://N` serve fd N with that protocol,
//!   whether or not systemd passed it (any inherited listening socket works).
//! - When systemd passed sockets, nothing is bound: address listeners
//!   (`--http :8000`, `--socket /run/app.sock`) are not bound, they only give
//!   their protocol to the passed sockets no `fd://N` names. If they are all
//!   `--http` those sockets speak HTTP; all `--socket`, uwsgi. Addresses of
//!   both kinds, or none at all, with such sockets left over is an error that
//!   asks for `fd://N`.
//! - With no `--http` or `--socket` at all, the passed sockets speak HTTP
//!   (bare `systemd-socket-activate -l 8000 rwsgi app.py`, as Gunicorn
//!   does), and the log says so.
//! - `--stats fd://N` / `--metrics fd://N` may take a passed socket too.
//! - An fd named twice is an error.

use std::collections::BTreeSet;
use std::os::fd::RawFd;

use crate::config::{Config, ListenAddr, ListenSpec, Protocol};

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// A socket the parent passed: its fd and its `LISTEN_FDNAMES` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    pub fd: RawFd,
    pub name: Option<String>,
}

impl Passed {
    fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("fd {} ({n:?})", self.fd),
            None => format!("fd {}", self.fd),
        }
    }
}

/// Whether systemd passed this process sockets (LISTEN_FDS for our pid):
/// the configured listen addresses are then not bound.
pub fn activated() -> bool {
    let [pid, fds] = ["LISTEN_PID", "LISTEN_FDS"].map(|k| std::env::var(k).ok());
    parse_env(pid.as_deref(), fds.as_deref(), None, std::process::id())
        .is_ok_and(|passed| !passed.is_empty())
}

/// The listeners to open for `config`, with sockets passed by systemd in
/// place of addresses (see the module docs). Reads and removes `LISTEN_PID`,
/// `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment: call it once, in
/// the master, before any fork or thread.
pub fn listen_specs(config: &Config) -> Result<Vec<ListenSpec>, String> {
    const VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];
    let [pid, fds, names] = VARS.map(|k| std::env::var(k).ok());
    for k in VARS {
        std::env::remove_var(k);
    }
    let passed = parse_env(
        pid.as_deref(),
        fds.as_deref(),
        names.as_deref(),
        std::process::id(),
    )?;
    let endpoints: Vec<&ListenAddr> = config
        .stats
        .iter()
        .map(|(a, _)| a)
        .chain(config.metrics.iter())
        .collect();
    let specs = resolve(&config.listen, &endpoints, &passed)?;
    if !passed.is_empty() {
        if config.listen.is_empty() {
            log::info!(
                "socket activation without --http or --socket: serving HTTP on the passed \
                 socket(s) (for nginx's uwsgi_pass, say --socket fd://N)"
            );
        }
        for a in config.listen.iter().filter(|s| !is_fd(s)) {
            log::info!(
                "not binding {} {}: serving the socket(s) systemd passed",
                flag(a.protocol),
                a.addr
            );
        }
        for p in &passed {
            match specs.iter().find(|s| s.addr == ListenAddr::Fd(p.fd)) {
                Some(s) => log::info!(
                    "socket activation: {} speaks {}",
                    p.describe(),
                    s.protocol.name()
                ),
                None => log::info!("socket activation: {} is an endpoint", p.describe()),
            }
        }
    }
    Ok(specs)
}

/// The passed sockets, from the environment's values. Nothing when
/// `LISTEN_FDS` is unset or `LISTEN_PID` is not `our_pid` (the variables were
/// meant for another process).
pub fn parse_env(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    our_pid: u32,
) -> Result<Vec<Passed>, String> {
    let Some(fds) = listen_fds else {
        return Ok(Vec::new());
    };
    let Some(pid) = listen_pid else {
        log::warn!("LISTEN_FDS is set without LISTEN_PID; ignoring it");
        return Ok(Vec::new());
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_PID={pid:?} is not a process id"))?;
    if pid != our_pid {
        log::warn!(
            "LISTEN_PID={pid} is not this process ({our_pid}): ignoring LISTEN_FDS \
             (a wrapper must exec rwsgi, not fork it)"
        );
        return Ok(Vec::new());
    }
    let count: u16 = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS={fds:?} is not a number of sockets"))?;
    let names: Vec<&str> = listen_fdnames
        .map(|n| n.split(':').collect())
        .unwrap_or_default();
    if listen_fdnames.is_some() && names.len() != usize::from(count) {
        log::warn!(
            "LISTEN_FDNAMES has {} name(s) for {count} socket(s); ignoring the names",
            names.len()
        );
    }
    let named = names.len() == usize::from(count);
    Ok((0..count)
        .map(|i| Passed {
            fd: LISTEN_FDS_START + RawFd::from(i),
            name: named.then(|| names[usize::from(i)].to_string()),
        })
        .collect())
}

fn is_fd(spec: &ListenSpec) -> bool {
    matches!(spec.addr, ListenAddr::Fd(_))
}

fn flag(p: Protocol) -> &'static str {
    match p {
        Protocol::Http => "--http",
        Protocol::Uwsgi => "--socket",
    }
}

/// Applies the rule of the module docs: the listeners to open, given the
/// configured ones, the endpoint addresses and what systemd passed.
pub fn resolve(
    listen: &[ListenSpec],
    endpoints: &[&ListenAddr],
    passed: &[Passed],
) -> Result<Vec<ListenSpec>, String> {
    let mut named = BTreeSet::new();
    for addr in listen
        .iter()
        .map(|s| &s.addr)
        .chain(endpoints.iter().copied())
    {
        if let ListenAddr::Fd(fd) = addr {
            if !named.insert(*fd) {
                return Err(format!(
                    "fd://{fd} is named twice; each inherited socket serves one listener"
                ));
            }
        }
    }
    if passed.is_empty() {
        return Ok(listen.to_vec());
    }
    let mut specs: Vec<ListenSpec> = listen.iter().filter(|s| is_fd(s)).cloned().collect();
    let left: Vec<&Passed> = passed.iter().filter(|p| !named.contains(&p.fd)).collect();
    if left.is_empty() {
        return Ok(specs);
    }
    let protocols: BTreeSet<&str> = listen
        .iter()
        .filter(|s| !is_fd(s))
        .map(|s| s.protocol.name())
        .collect();
    let which = left
        .iter()
        .map(|p| p.describe())
        .collect::<Vec<_>>()
        .join(", ");
    let example = left[0].fd;
    let protocol = match protocols.into_iter().collect::<Vec<_>>()[..] {
        ["http"] => Protocol::Http,
        ["uwsgi"] => Protocol::Uwsgi,
        [] if listen.is_empty() => Protocol::Http,
        [] => {
            return Err(format!(
                "systemd passed {which}, which no --http/--socket names: \
                 add --http fd://{example} or --socket fd://{example}"
            ))
        }
        _ => {
            return Err(format!(
                "systemd passed {which}, and both --http and --socket give addresses: \
                 say which socket speaks which protocol with --http fd://N and --socket fd://N \
                 (e.g. --http fd://{example})"
            ))
        }
    };
    specs.extend(left.iter().map(|p| ListenSpec {
        addr: ListenAddr::Fd(p.fd),
        protocol,
    }));
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addr: &str, protocol: Protocol) -> ListenSpec {
        ListenSpec {
            addr: crate::config::parse_listen(addr).unwrap(),
            protocol,
        }
    }

    fn passed(fds: &[RawFd]) -> Vec<Passed> {
        fds.iter().map(|&fd| Passed { fd, name: None }).collect()
    }

    fn show(specs: &[ListenSpec]) -> Vec<String> {
        specs
            .iter()
            .map(|s| format!("{} {}", s.protocol.name(), s.addr))
            .collect()
    }

    #[test]
    fn environment() {
        let env = |pid, fds, names| parse_env(pid, fds, names, 42);
        assert_eq!(env(None, None, None), Ok(vec![]));
        assert_eq!(env(Some("42"), None, None), Ok(vec![]));
        assert_eq!(env(None, Some("2"), None), Ok(vec![]));
        assert_eq!(env(Some("41"), Some("2"), None), Ok(vec![]));
        assert_eq!(env(Some("42"), Some("0"), None), Ok(vec![]));
        assert_eq!(env(Some("42"), Some("2"), None), Ok(passed(&[3, 4])));
        let named = env(Some("42"), Some("2"), Some("web:api")).unwrap();
        assert_eq!(named[1].name.as_deref(), Some("api"));
        assert_eq!(named[1].describe(), "fd 4 (\"api\")");
        assert_eq!(env(Some("42"), Some("2"), Some("web")), Ok(passed(&[3, 4])));
        assert!(env(Some("x"), Some("1"), None)
            .unwrap_err()
            .contains("LISTEN_PID"));
        assert!(env(Some("42"), Some("-1"), None)
            .unwrap_err()
            .contains("LISTEN_FDS"));
    }

    #[test]
    fn without_activation_specs_are_kept() {
        let listen = [
            spec(":8000", Protocol::Http),
            spec("fd://5", Protocol::Uwsgi),
        ];
        assert_eq!(resolve(&listen, &[], &[]).unwrap(), listen.to_vec());
    }

    #[test]
    fn passed_sockets_take_the_protocol_of_the_addresses() {
        let http = [
            spec(":8000", Protocol::Http),
            spec("[::1]:8001", Protocol::Http),
        ];
        let got = resolve(&http, &[], &passed(&[3, 4])).unwrap();
        assert_eq!(show(&got), ["http fd://3", "http fd://4"]);
        let uwsgi = [spec("/run/app.sock", Protocol::Uwsgi)];
        let got = resolve(&uwsgi, &[], &passed(&[3])).unwrap();
        assert_eq!(show(&got), ["uwsgi fd://3"]);
    }

    #[test]
    fn fd_urls_choose_the_protocol_per_socket() {
        let listen = [
            spec("fd://4", Protocol::Uwsgi),
            spec("fd://3", Protocol::Http),
        ];
        let got = resolve(&listen, &[], &passed(&[3, 4])).unwrap();
        assert_eq!(show(&got), ["uwsgi fd://4", "http fd://3"]);
        // The rest go to the address flags' protocol; the address is not bound.
        let listen = [spec("fd://3", Protocol::Uwsgi), spec(":80", Protocol::Http)];
        let got = resolve(&listen, &[], &passed(&[3, 4])).unwrap();
        assert_eq!(show(&got), ["uwsgi fd://3", "http fd://4"]);
        // An endpoint may take a passed socket.
        let stats = ListenAddr::Fd(4);
        let got = resolve(&listen[..1], &[&stats], &passed(&[3, 4])).unwrap();
        assert_eq!(show(&got), ["uwsgi fd://3"]);
    }

    #[test]
    fn ambiguity_is_an_error_that_names_the_fix() {
        let both = [spec(":80", Protocol::Http), spec(":81", Protocol::Uwsgi)];
        let e = resolve(&both, &[], &passed(&[3, 4])).unwrap_err();
        assert!(
            e.contains("fd 3, fd 4") && e.contains("--http fd://"),
            "{e}"
        );
        // Bare activation (nothing named at all) is HTTP, not ambiguous.
        let got = resolve(&[], &[], &passed(&[3, 4])).unwrap();
        assert_eq!(show(&got), ["http fd://3", "http fd://4"]);
        let only_fd = [spec("fd://3", Protocol::Http)];
        let e = resolve(&only_fd, &[], &passed(&[3, 4])).unwrap_err();
        assert!(e.contains("--socket fd://4"), "{e}");
        let twice = [
            spec("fd://3", Protocol::Http),
            spec("fd://3", Protocol::Uwsgi),
        ];
        assert!(resolve(&twice, &[], &[]).unwrap_err().contains("twice"));
        let metrics = ListenAddr::Fd(3);
        assert!(resolve(&only_fd, &[&metrics], &[])
            .unwrap_err()
            .contains("twice"));
    }
}
