//! The process around the server: the pidfile, detaching, the log file,
//! the workers' identity, the umask and the app's environment.

use std::path::PathBuf;

use super::paths::absolute;
use super::{err, ConfigError};
use crate::cli::Cli;

/// The process around the server: files, identity, environment.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    pub pidfile: Option<PathBuf>,
    /// `--daemonize`: detach and log to this file.
    pub daemonize: Option<PathBuf>,
    /// Where logs go (`--logto`, or the `--daemonize` file); stderr if None.
    pub logto: Option<PathBuf>,
    /// Workers drop to this uid/gid after fork.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub umask: Option<u32>,
    /// `--env KEY=VALUE` pairs for the app.
    pub env: Vec<(String, String)>,
}

pub(super) fn process_options(cli: &Cli) -> Result<ProcessOptions, ConfigError> {
    let uid = match &cli.uid {
        Some(u) => Some(crate::sys::users::resolve_user(u).ok_or_else(|| {
            ConfigError::invalid(format!(
                "--uid {u:?}: no such user (give a name from /etc/passwd or a number)"
            ))
        })?),
        None => None,
    };
    let gid = match (&cli.gid, &cli.uid) {
        (Some(g), _) => Some(crate::sys::users::resolve_group(g).ok_or_else(|| {
            ConfigError::invalid(format!(
                "--gid {g:?}: no such group (give a name from /etc/group or a number)"
            ))
        })?),
        // Without --gid, the user's primary group.
        (None, Some(u)) => {
            let user = uid.and_then(|id| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id))
                    .ok()
                    .flatten()
            });
            match user {
                Some(user) => Some(user.gid.as_raw()),
                // Never leave the workers in root's group by accident.
                None => {
                    return err(format!(
                        "--uid {u}: this user has no passwd entry, so its group is unknown; give --gid too"
                    ))
                }
            }
        }
        (None, None) => None,
    };
    let umask = match &cli.umask {
        Some(m) => Some(
            u32::from_str_radix(m, 8)
                .ok()
                .filter(|&v| v <= 0o777)
                .ok_or_else(|| {
                    ConfigError::invalid(format!("--umask {m:?}: expected an octal mask like 022"))
                })?,
        ),
        None => None,
    };
    let mut env = Vec::new();
    for kv in &cli.env {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                env.push((k.to_string(), v.to_string()))
            }
            _ => return err(format!("--env {kv:?}: expected KEY=VALUE")),
        }
    }
    Ok(ProcessOptions {
        // Absolute, from the start directory: workers reopen the log file
        // (USR1) after --chdir.
        pidfile: cli.pidfile.as_deref().map(absolute),
        daemonize: cli.daemonize.as_deref().map(absolute),
        logto: cli
            .logto
            .as_deref()
            .or(cli.daemonize.as_deref())
            .map(absolute),
        uid,
        gid,
        umask,
        env,
    })
}
