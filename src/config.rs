//! The TOML configuration file, as the daemon loads it: the command crate
//! reads and checks the text (see `tcpvs_command::config`), each scheduler's
//! options included; building the table then checks what only the daemon can
//! tell (the compiled size of the patterns, rules' and LARD's `dynamic`),
//! located at its line the same way.

use std::path::Path;

use crate::table::Table;

pub use tcpvs_command::config::{services_to_toml, Config, ConfigError, DaemonOptions};

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and checks configuration text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let config = tcpvs_command::config::parse_with(text, path, &crate::resolve::Logged::ONCE)?;
    if let Err((site, error)) = Table::build(config.table.clone(), None) {
        return Err(tcpvs_command::config::at_site(text, path, site, &error));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_options_are_checked_at_their_line() {
        let text = "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:80\"\n\
                    scheduler = \"lard\"\n[service.sched_opts]\nlow = 70\n";
        let message = parse(text, Path::new("t.toml")).unwrap_err().to_string();
        assert_eq!(
            message,
            "t.toml:6: service[0].sched_opts.low: scheduler lard of service `web`: \
             low=70 must be below high=65"
        );
        // Fine to the command crate, too big for the daemon's regex engine:
        // found when the table is built, at the service.
        let big = text.replace("low = 70", r#"dynamic = '\w{1000}\w{1000}\w{1000}'"#);
        let message = parse(&big, Path::new("t.toml")).unwrap_err().to_string();
        let start = "t.toml:2: service[0].ident: scheduler lard of service `web`: \
                     option dynamic: invalid pattern `\\w{1000}";
        assert!(message.starts_with(start), "{message}");
    }
}
