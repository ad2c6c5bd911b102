//! What a listing shows (`tcpvsadm -L`, `-S`): the table as plain strings and
//! numbers, with the live counters the daemon adds. [`ServiceView::of`] is the
//! one place a spec becomes a view, for the daemon's listings and for the
//! files tcpvsadm loads alike.

use serde::{Deserialize, Serialize};

use crate::spec::{SchedOptions, ServerAddr, ServiceSpec};

/// The table as `-L` and `-S` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableView {
    pub generation: u64,
    pub services: Vec<ServiceView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub ident: String,
    /// As configured (port 0 stays 0).
    pub listen: String,
    /// Where it actually listens, when started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
    pub protocol: String,
    pub scheduler: String,
    #[serde(default)]
    pub sched_opts: SchedOptions,
    pub enabled: bool,
    /// Persistence timeout in seconds, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<u64>,
    /// The `X-Forwarded-Proto` added to requests, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_proto: Option<String>,
    /// RTSP: live sessions in the service's session table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    pub servers: Vec<ServerView>,
    pub rules: Vec<RuleView>,
    /// `None`: every server takes unmatched requests.
    #[serde(default)]
    pub default: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    pub address: String,
    pub weight: u16,
    pub active: u32,
    pub requests: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleView {
    pub pattern: String,
    pub servers: Vec<String>,
    #[serde(default)]
    pub match_group: Option<u32>,
}

impl TableView {
    /// The view of `services` at `generation`, counters at zero.
    pub fn of<'a>(generation: u64, services: impl IntoIterator<Item = &'a ServiceSpec>) -> Self {
        Self {
            generation,
            services: services.into_iter().map(ServiceView::of).collect(),
        }
    }
}

impl ServiceView {
    /// The view of `spec`: not bound, counters at zero (the daemon fills in
    /// the live ones).
    pub fn of(spec: &ServiceSpec) -> Self {
        let addrs = |list: &[ServerAddr]| list.iter().map(ToString::to_string).collect();
        Self {
            ident: spec.ident.to_string(),
            listen: spec.listen.to_string(),
            bound: None,
            protocol: spec.protocol.to_string(),
            scheduler: spec.scheduler.to_string(),
            sched_opts: spec.sched_opts.clone(),
            enabled: spec.enabled,
            persistent: spec.persistent.map(|t| t.as_secs()),
            forwarded_proto: spec.forwarded_proto.clone(),
            sessions: None,
            servers: spec
                .servers
                .iter()
                .map(|s| ServerView {
                    address: s.addr.to_string(),
                    weight: s.weight.0,
                    active: 0,
                    requests: 0,
                    failures: 0,
                })
                .collect(),
            rules: spec
                .rules
                .iter()
                .map(|r| RuleView {
                    pattern: r.pattern.clone(),
                    servers: addrs(&r.servers),
                    match_group: r.match_group,
                })
                .collect(),
            default: spec.default.as_deref().map(addrs),
        }
    }
}
