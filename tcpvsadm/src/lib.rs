//! tcpvsadm as a library: its command line (`args`), its control-socket
//! client (`client`) and what it prints (`print`). The binary is `main.rs`;
//! the library lets tests feed the same values to tcpvsadm and to the TOML
//! file.

#![forbid(unsafe_code)]

pub mod args;
pub mod client;
pub mod print;
