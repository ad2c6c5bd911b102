//! `user` and `group`: tcpvsd started as root (to bind port 80, or its
//! socket under /run) runs as an unprivileged user once everything it needs
//! root for is open, as nginx's workers and HAProxy's `user`/`group` do.
//! glibc applies the change to every thread of the process.

use anyhow::{bail, Context};
use nix::unistd::{getuid, setgid, setgroups, setuid, Gid, Group, Uid, User};

/// Whom to run as.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub uid: Uid,
    pub gid: Gid,
    /// `user:group`, for messages.
    pub name: String,
}

/// Looks up `user` and `group` (the user's own group when only the user is
/// given); `None` when neither is set.
pub fn resolve(user: Option<&str>, group: Option<&str>) -> anyhow::Result<Option<RunAs>> {
    let user = match user {
        None if group.is_none() => return Ok(None),
        None => None,
        Some(name) => Some(
            User::from_name(name)
                .with_context(|| format!("user `{name}`"))?
                .with_context(|| format!("user `{name}`: no such user"))?,
        ),
    };
    let group = match group {
        None => None,
        Some(name) => Some(
            Group::from_name(name)
                .with_context(|| format!("group `{name}`"))?
                .with_context(|| format!("group `{name}`: no such group"))?,
        ),
    };
    let uid = user.as_ref().map_or_else(getuid, |u| u.uid);
    let gid = match (&group, &user) {
        (Some(g), _) => g.gid,
        (None, Some(u)) => u.gid,
        (None, None) => nix::unistd::getgid(),
    };
    let name = format!(
        "{}:{}",
        user.as_ref()
            .map_or_else(|| uid.to_string(), |u| u.name.clone()),
        group
            .as_ref()
            .map_or_else(|| gid.to_string(), |g| g.name.clone())
    );
    Ok(Some(RunAs { uid, gid, name }))
}

/// Becomes `run_as` for good: supplementary groups, group, then user (in
/// that order: a process that gave up root cannot change its groups).
pub fn drop_to(run_as: &RunAs) -> anyhow::Result<()> {
    if !getuid().is_root() {
        if getuid() == run_as.uid {
            return Ok(());
        }
        bail!(
            "user/group {}: tcpvsd must be started as root to change its user",
            run_as.name
        );
    }
    setgroups(&[run_as.gid]).context("setgroups")?;
    setgid(run_as.gid).context("setgid")?;
    setuid(run_as.uid).context("setuid")?;
    if run_as.uid != Uid::from_raw(0) && setuid(Uid::from_raw(0)).is_ok() {
        bail!(
            "still able to become root after dropping to {}",
            run_as.name
        );
    }
    tracing::info!(run_as = %run_as.name, "running unprivileged from now on");
    Ok(())
}
