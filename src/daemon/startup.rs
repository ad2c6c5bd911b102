//! Which table tcpvsd starts with when both a configuration file and a
//! state file hold services: the state file wins (it holds the table as the
//! last tcpvsadm edit left it), and the log says so, naming what the
//! configuration file held that was not applied. SIGHUP or `tcpvsadm -f`
//! applies the file when that is what the operator wants.

use std::path::Path;

use crate::table::ServiceSpec;

/// The services to start with: `saved` (the state file at `path`); the
/// configuration file's `configured` ones that differ are named in the log.
pub fn prefer_state_file(
    path: &Path,
    saved: Vec<ServiceSpec>,
    configured: Vec<ServiceSpec>,
) -> Vec<ServiceSpec> {
    tracing::info!(
        state_file = %path.display(),
        services = saved.len(),
        "the table is the state file's: it holds the last edits and wins over the \
         configuration file's services"
    );
    let not_applied = differences(&saved, &configured);
    if !not_applied.is_empty() {
        tracing::warn!(
            "the configuration file's services not applied (the state file wins; \
             SIGHUP or tcpvsadm -f applies the file): {}",
            not_applied.join(", ")
        );
    }
    saved
}

/// What the configuration file says that the state file does not: services
/// it has that differ or are missing there, and services only the state
/// file has.
fn differences(saved: &[ServiceSpec], configured: &[ServiceSpec]) -> Vec<String> {
    let mut differ: Vec<String> = configured
        .iter()
        .filter_map(|c| match saved.iter().find(|s| s.ident == c.ident) {
            None => Some(format!("{} (not in the state file)", c.ident)),
            Some(s) if s != c => Some(format!("{} (differs)", c.ident)),
            Some(_) => None,
        })
        .collect();
    differ.extend(
        saved
            .iter()
            .filter(|s| !configured.iter().any(|c| c.ident == s.ident))
            .map(|s| format!("{} (only in the state file)", s.ident)),
    );
    differ
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(ident: &str, port: u16) -> ServiceSpec {
        ServiceSpec::new(ident.parse().unwrap(), ([127, 0, 0, 1], port).into())
    }

    #[test]
    fn every_difference_is_named() {
        let saved = [service("web", 80), service("old", 81)];
        let configured = [
            service("web", 8080),
            service("api", 82),
            service("same", 83),
        ];
        let mut saved = saved.to_vec();
        saved.push(service("same", 83));
        assert_eq!(
            differences(&saved, &configured),
            [
                "web (differs)",
                "api (not in the state file)",
                "old (only in the state file)"
            ]
        );
        assert!(differences(&saved, &saved).is_empty());
    }
}
