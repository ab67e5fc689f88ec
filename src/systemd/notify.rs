//! The `sd_notify` protocol, written by hand: one datagram of
//! newline-separated `KEY=VALUE` lines to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name when it starts with `@`).
//!
//! Only the master sends, and it opens a fresh close-on-exec socket for each
//! message (a handful per lifetime), so no notify fd ever exists across a
//! fork: workers cannot inherit one. A failure to notify never fails the
//! server: it is logged once at warn, then at debug.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use crate::socket::Listener;
use crate::supervise::Phase;

/// Where notifications go; does nothing when systemd did not ask for them.
#[derive(Debug)]
pub struct Notifier {
    target: Option<SocketAddr>,
    /// `$NOTIFY_SOCKET` as given, for log lines.
    name: String,
    /// A send has failed before (later failures are logged at debug).
    failed: bool,
    /// `WatchdogSec=`: how often to send `WATCHDOG=1` (half the timeout
    /// systemd gave), and when next.
    watchdog: Option<(Duration, Instant)>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and removes it from the environment, so the
    /// app's subprocesses do not notify systemd in our name. Call it in the
    /// master before forking.
    pub fn from_env() -> Notifier {
        let value = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(name);
        }
        let mut n = Notifier::new(value.as_deref());
        if n.enabled() {
            n.watchdog = watchdog_interval(usec.as_deref(), pid.as_deref(), crate::sys::getpid())
                .map(|every| (every, Instant::now()));
            if let Some((every, _)) = n.watchdog {
                log::info!("systemd watchdog: WATCHDOG=1 every {every:?}");
            }
        }
        n
    }

    /// Sends `WATCHDOG=1` if it is due; returns when the next one is. The
    /// master calls it every loop turn, so a master stuck anywhere stops the
    /// pings and systemd restarts the service.
    pub fn watchdog(&mut self) -> Option<Instant> {
        let (every, next) = self.watchdog?;
        let now = Instant::now();
        if now < next {
            return Some(next);
        }
        self.send("WATCHDOG=1");
        let next = crate::sys::deadline(now, every);
        self.watchdog = Some((every, next));
        Some(next)
    }

    /// A notifier for the socket `path` (`None`: notifications are off).
    pub fn new(path: Option<&OsStr>) -> Notifier {
        let name = path.map(|p| p.to_string_lossy().into_owned());
        let target = path.and_then(|p| match parse_target(p) {
            Ok(addr) => Some(addr),
            Err(e) => {
                log::warn!(
                    "NOTIFY_SOCKET={}: {e}; not notifying systemd",
                    p.to_string_lossy()
                );
                None
            }
        });
        Notifier {
            target,
            name: name.unwrap_or_default(),
            failed: false,
            watchdog: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one notification (`KEY=VALUE` lines); never fails the caller.
    pub fn send(&mut self, state: &str) {
        let Some(target) = &self.target else {
            return;
        };
        let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(state.as_bytes(), target));
        match sent {
            Ok(_) => log::debug!("notified systemd: {}", state.replace('\n', " ")),
            Err(e) if !self.failed => {
                self.failed = true;
                log::warn!("cannot notify systemd at NOTIFY_SOCKET={}: {e}", self.name);
            }
            Err(e) => log::debug!("cannot notify systemd at NOTIFY_SOCKET={}: {e}", self.name),
        }
    }

    /// Tells systemd the master entered `phase`.
    pub fn phase(&mut self, phase: Phase, workers: usize, listeners: &[Listener]) {
        if !self.enabled() {
            return;
        }
        let on = listeners
            .iter()
            .map(|l| format!("{}://{}", l.protocol.name(), l.addr))
            .collect::<Vec<_>>()
            .join(", ");
        let msg = phase_message(phase, workers, &on, crate::sys::monotonic_usec());
        self.send(&msg);
    }
}

/// The notification for a phase change. systemd (≥ 253) wants
/// `MONOTONIC_USEC` with `RELOADING=1`, and `READY=1` when a reload is over.
pub fn phase_message(phase: Phase, workers: usize, listeners: &str, monotonic_usec: u64) -> String {
    match phase {
        Phase::Starting => format!("STATUS=starting {workers} worker(s)"),
        Phase::Running => format!("READY=1\nSTATUS=serving {workers} worker(s) on {listeners}"),
        Phase::Reloading => format!(
            "RELOADING=1\nMONOTONIC_USEC={monotonic_usec}\nSTATUS=reloading {workers} worker(s)"
        ),
        Phase::ShuttingDown => "STOPPING=1\nSTATUS=shutting down".to_string(),
    }
}

/// How often to ping systemd's watchdog: half of `$WATCHDOG_USEC`, if it is
/// set, valid, and meant for this process (`$WATCHDOG_PID`, when set, is
/// `pid`), as sd_watchdog_enabled(3) reads them.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: i32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<i32>().ok() != Some(me) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// `/path` or `@abstract-name` to a socket address.
fn parse_target(value: &OsStr) -> Result<SocketAddr, String> {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(value).map_err(|e| e.to_string()),
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]).map_err(|e| e.to_string()),
        _ => Err("expected an absolute socket path or @abstract-name".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1024];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("rwsgi-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let mut n = Notifier::new(Some(path.as_os_str()));
        assert!(n.enabled());
        n.send("READY=1");
        assert_eq!(recv(&sock), "READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
        // The socket is gone: the failure is logged, not raised.
        n.send("STOPPING=1");
        assert!(n.failed);

        let name = format!("rwsgi-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        let mut n = Notifier::new(Some(OsStr::new(&format!("@{name}"))));
        n.send("STATUS=hi");
        assert_eq!(recv(&sock), "STATUS=hi");
    }

    #[test]
    fn unusable_values_turn_notifications_off() {
        for v in ["", "relative.sock", "vsock:2:1234"] {
            assert!(!Notifier::new(Some(OsStr::new(v))).enabled(), "{v:?}");
        }
        assert!(!Notifier::new(None).enabled());
        Notifier::new(None).send("READY=1"); // a no-op
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_this_pid_only() {
        let half = Some(Duration::from_millis(1500));
        assert_eq!(watchdog_interval(Some("3000000"), None, 7), half);
        assert_eq!(watchdog_interval(Some("3000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval(Some("3000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, Some("7"), 7), None);
    }

    #[test]
    fn phase_messages() {
        let ready = phase_message(Phase::Running, 4, "http://127.0.0.1:8000", 1);
        assert_eq!(
            ready,
            "READY=1\nSTATUS=serving 4 worker(s) on http://127.0.0.1:8000"
        );
        let reload = phase_message(Phase::Reloading, 2, "", 123);
        assert!(
            reload.starts_with("RELOADING=1\nMONOTONIC_USEC=123\nSTATUS="),
            "{reload}"
        );
        assert!(phase_message(Phase::ShuttingDown, 2, "", 0).starts_with("STOPPING=1\n"));
    }
}
