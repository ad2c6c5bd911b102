//! What a reload (SIGHUP, `tcpvsadm -f FILE.toml`) does beyond the table:
//! the log level changes at once, and the settings that only a restart can
//! change are named in one warning.

use std::path::Path;

use tcpvs_command::config::{self, DaemonOptions};
use tcpvs_command::resolve::Offline;
use tcpvs_command::{LogFormat, TableSpec};

/// Changes the daemon's log filter; an error leaves the old one.
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The daemon as it started, for what a reload may and may not change.
pub struct Reload {
    started: DaemonOptions,
    /// `--log-level` given at start: it wins over every file's level.
    level_from_flag: bool,
    set_log_level: SetLogLevel,
    pinned: PinnedSettings,
}

/// Table settings given by tcpvsd's flags: they win over every file's.
#[derive(Debug, Clone, Default)]
pub struct PinnedSettings {
    /// `--access-log`: on or off (its file is a restart's).
    pub access_log: Option<bool>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

impl PinnedSettings {
    /// Puts the flags' values over `spec`'s.
    pub fn apply(&self, spec: &mut TableSpec) {
        if let Some(on) = self.access_log {
            spec.settings.access_log = on;
        }
        if let Some(format) = self.log_format {
            spec.settings.log_format = format;
        }
    }
}

impl Reload {
    pub fn new(started: DaemonOptions, level_from_flag: bool, set_log_level: SetLogLevel) -> Self {
        Self {
            started,
            level_from_flag,
            set_log_level,
            pinned: PinnedSettings::default(),
        }
    }

    /// The table settings the flags gave, kept over every loaded file's.
    pub fn with_pinned(self, pinned: PinnedSettings) -> Self {
        Self { pinned, ..self }
    }

    /// Puts the flags' settings over a loaded file's table.
    pub fn pin(&self, spec: &mut TableSpec) {
        self.pinned.apply(spec);
    }

    /// After the table of the file `source` (holding `text`) was applied.
    pub fn after_load(&self, source: &str, text: &str) {
        // The table came from this text: it parses. Its settings do not
        // depend on what names resolve to: none is looked up again (a lookup
        // failing now would lose them, and lookups block the edits).
        let Ok(loaded) = config::parse_with(text, Path::new(source), &Offline) else {
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
    compare(
        "access_log (its file)",
        started.access_log.file() == loaded.access_log.file(),
    );
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

    #[test]
    fn a_name_that_fails_now_does_not_lose_the_file_s_log_level() {
        use std::sync::{Arc, Mutex};
        let set = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = set.clone();
        let reload = Reload::new(
            DaemonOptions::default(),
            false,
            Box::new(move |level| {
                seen.lock().unwrap().push(level.to_string());
                Ok(())
            }),
        );
        // The table was applied (its name kept the address it had); the
        // name does not resolve now (.invalid never does, RFC 6761).
        let text = "log_level = \"debug\"\n[[service]]\nident = \"web\"\n\
                    listen = \"127.0.0.1:0\"\n[[service.server]]\naddress = \"gone.invalid:80\"\n";
        reload.after_load("t.toml", text);
        assert_eq!(*set.lock().unwrap(), ["debug"]);
    }
}
