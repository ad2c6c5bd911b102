//! What a reload (SIGHUP, `tcpvsadm -f FILE.toml`) does beyond the table:
//! the log level changes at once, and the settings that only a restart can
//! change are named in one warning.

use std::path::Path;

use tcpvs_command::config::{self, DaemonOptions};

/// Changes the daemon's log filter; an error leaves the old one.
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The daemon as it started, for what a reload may and may not change.
pub struct Reload {
    started: DaemonOptions,
    /// `--log-level` given at start: it wins over every file's level.
    level_from_flag: bool,
    set_log_level: SetLogLevel,
}

impl Reload {
    pub fn new(started: DaemonOptions, level_from_flag: bool, set_log_level: SetLogLevel) -> Self {
        Self {
            started,
            level_from_flag,
            set_log_level,
        }
    }

    /// After the table of the file `source` (holding `text`) was applied.
    pub fn after_load(&self, source: &str, text: &str) {
        // The table came from this text: it parses.
        let Ok(loaded) = config::parse(text, Path::new(source)) else {
            return;
        };
        let daemon = loaded.daemon;
        if !self.level_from_flag {
            let level = daemon.log_level.as_deref().unwrap_or("info");
            if let Err(e) = (self.set_log_level)(level) {
                tracing::warn!(file = source, "log_level not changed: {e}");
            }
        }
        let needs_restart = restart_only(&self.started, &daemon);
        if !needs_restart.is_empty() {
            tracing::warn!(
                file = source,
                "changed but only applied at the next start: {}",
                needs_restart.join(", ")
            );
        }
    }
}

/// The settings that differ between `started` and `loaded` and that a
/// running daemon cannot change (its threads, sockets and files).
pub fn restart_only(started: &DaemonOptions, loaded: &DaemonOptions) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut compare = |name, same: bool| {
        if !same {
            changed.push(name);
        }
    };
    compare("workers", started.workers == loaded.workers);
    compare(
        "control_socket",
        started.control_socket == loaded.control_socket,
    );
    compare(
        "control_group",
        started.control_group == loaded.control_group,
    );
    compare("state_file", started.state_file == loaded.state_file);
    compare("admin", started.admin == loaded.admin);
    compare("log_file", started.log_file == loaded.log_file);
    compare("user", started.user == loaded.user);
    compare("group", started.group == loaded.group);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_a_running_daemon_cannot_change_is_named() {
        let started = DaemonOptions::default();
        let mut loaded = started.clone();
        loaded.log_level = Some("debug".into());
        loaded.allow_empty = true;
        assert!(restart_only(&started, &loaded).is_empty());
        loaded.workers = Some(4);
        loaded.state_file = Some("/var/lib/tcpvs/state.toml".into());
        assert_eq!(restart_only(&started, &loaded), ["workers", "state_file"]);
    }
}
