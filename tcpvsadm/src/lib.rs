//! tcpvsadm as a library: its command line (`cli` as clap reads it, `args`
//! the command built from it), its control-socket client (`client`) and
//! what it prints (`print`, in aligned columns by `grid`, with `names` for
//! addresses). The binary is `main.rs`; the library lets tests feed the same
//! values to tcpvsadm and to the TOML file.

#![forbid(unsafe_code)]

pub mod args;
pub mod cli;
pub mod client;
pub mod grid;
pub mod names;
pub mod print;
