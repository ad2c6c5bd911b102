//! The control plane: the unix socket that receives tcpvsadm's verbs
//! (`socket`), the place where an edit becomes a new table (`plane`), and
//! the traffic its listings show (`traffic`). The verbs themselves, and the
//! views a listing returns, are the command crate's (`tcpvs_command::verb`,
//! `tcpvs_command::view`).

pub mod plane;
pub mod reload;
pub mod socket;
pub mod traffic;

pub use tcpvs_command::DEFAULT_SOCKET;
