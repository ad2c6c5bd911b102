//! tcpvs: a user-space KTCPVS. A Layer-7 switch that accepts client connections
//! on thread-per-core io_uring workers, reads each request, picks a real server
//! by content rules and load, and relays the exchange.
//!
//! The data plane (`worker`, `relay`, `pool`, `net`) reads an immutable rule table
//! (`table`) that the control plane swaps as a whole; live per-server state
//! (`server`) survives those swaps.
//!
//! The table's description and its validation, the control verbs, the TOML
//! format and the listing views are the `tcpvs-command` crate's (shared with
//! tcpvsadm, which links nothing of this one); `table` and `config` re-export
//! what the daemon uses of it.
// `net/` alone may use `unsafe` (each block says why it is sound); the rest
// of the crate may not.
#![deny(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod descriptors;
pub mod health;
pub mod net;
pub mod pool;
pub mod protocols;
pub mod relay;
pub mod resolve;
pub mod rule_conditions;
pub mod schedulers;
pub mod server;
pub mod sim;
pub mod slots;
pub mod sources;
pub mod state_file;
pub mod table;
pub mod throttled;
pub mod traffic;
pub mod worker;

/// For the fuzz targets in fuzz/: the contract every incremental head parser
/// keeps, checked by the unit tests and the fuzzer alike.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    pub use crate::protocols::http::head::check_incremental_contract;
}
