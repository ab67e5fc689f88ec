//! Names in the passwd and group databases to numeric ids (for `--uid`,
//! `--gid` and `--chown-socket`). A number is taken as it is.

/// A user name or number to a uid; `None` when no such user exists.
pub fn resolve_user(name: &str) -> Option<u32> {
    if let Ok(uid) = name.parse() {
        return Some(uid);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Some(u.uid.as_raw()),
        _ => None,
    }
}

/// A group name or number to a gid; `None` when no such group exists.
pub fn resolve_group(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse() {
        return Some(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Some(g.gid.as_raw()),
        _ => None,
    }
}
