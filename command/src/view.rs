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

/// One service as listed.
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

/// One real server as listed, with its live counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    pub address: String,
    pub weight: u16,
    pub active: u32,
    pub requests: u64,
    pub failures: u64,
}

/// One content rule as listed.
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::spec::{RuleSpec, SchedulerKind, ServerSpec, Weight};

    #[test]
    fn a_spec_viewed_says_what_it_holds() {
        let addr = |port| ServerAddr(([127, 0, 0, 1], port).into());
        let spec = ServiceSpec {
            scheduler: SchedulerKind::Lard,
            sched_opts: [("low".to_string(), "10".to_string())].into(),
            enabled: false,
            persistent: Some(Duration::from_secs(300)),
            forwarded_proto: Some("https".into()),
            servers: vec![ServerSpec::new(addr(9001), Weight(3))],
            rules: vec![RuleSpec {
                pattern: "^/home/([a-z]+)/".into(),
                servers: vec![addr(9001)],
                match_group: Some(1),
            }],
            default: Some(vec![addr(9001)]),
            ..ServiceSpec::new("web".parse().unwrap(), "127.0.0.1:80".parse().unwrap())
        };
        let view = TableView::of(7, [&spec]);
        assert_eq!(view.generation, 7);
        let web = &view.services[0];
        assert_eq!(
            (
                web.ident.as_str(),
                web.listen.as_str(),
                web.bound.as_deref()
            ),
            ("web", "127.0.0.1:80", None)
        );
        assert_eq!(
            (web.protocol.as_str(), web.scheduler.as_str()),
            ("http", "lard")
        );
        assert_eq!(web.sched_opts["low"], "10");
        assert!(!web.enabled);
        assert_eq!(web.persistent, Some(300));
        assert_eq!(web.forwarded_proto.as_deref(), Some("https"));
        assert_eq!(
            web.servers,
            [ServerView {
                address: "127.0.0.1:9001".into(),
                weight: 3,
                active: 0,
                requests: 0,
                failures: 0,
            }]
        );
        assert_eq!(
            web.rules,
            [RuleView {
                pattern: "^/home/([a-z]+)/".into(),
                servers: vec!["127.0.0.1:9001".into()],
                match_group: Some(1),
            }]
        );
        assert_eq!(web.default, Some(vec!["127.0.0.1:9001".to_string()]));
    }
}
