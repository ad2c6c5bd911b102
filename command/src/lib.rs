//! tcpvs's control language, shared by tcpvsd and tcpvsadm: the table as data
//! (`spec`), one validator per field (`validate`; a scheduler's options in
//! `sched_opts`), the verbs tcpvsadm sends and the daemon applies (`verb`),
//! the TOML file format (`config`) and what a listing shows (`view`). No I/O and no runtime: tcpvsadm links this and its
//! socket, nothing of the data plane. The one exception is a real server's
//! host name, looked up where a file or a verb gives one (`resolve`, behind
//! a trait that tests and tcpvsd replace).

#![forbid(unsafe_code)]

pub mod access_log;
pub mod config;
pub mod conn_limits;
pub mod health;
pub mod health_opts;
pub mod options;
pub mod resolve;
pub mod sched_opts;
pub mod spec;
mod summary;
pub mod validate;
pub mod verb;
pub mod view;

pub use access_log::{AccessLog, LogFormat};
pub use conn_limits::{LimitOptions, ServiceLimits};
pub use health::{
    AdminState, AgentSpec, CheckKind, CheckSpec, HealthSpec, HttpCheck, PassiveSpec, StatusRange,
};
pub use options::{OptionError, Options};
pub use spec::{
    HeaderMatch, Limits, Protocol, RuleMatch, RuleSpec, SchedOptions, SchedulerKind, ServerAddr,
    ServerSpec, ServiceId, ServiceSpec, Settings, Site, TableError, TableSpec, Timeouts,
    UnknownScheduler, Weight,
};
pub use verb::{
    CommandError, HandOver, HandedService, Request, Response, RuleArgs, ServerArgs, ServiceArgs,
    Verb,
};
pub use view::{HealthView, RuleView, ServerView, ServiceView, TableView};

/// Where tcpvsd listens for tcpvsadm unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/tcpvsd.sock";
