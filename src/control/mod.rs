//! The control plane: the unix socket that receives tcpvsadm's verbs
//! (`socket`), and the place where an edit becomes a new table (`plane`);
//! its listings count from `crate::traffic`. The verbs themselves, and the
//! views a listing returns, are the command crate's (`tcpvs_command::verb`,
//! `tcpvs_command::view`).

pub mod plane;
pub mod reload;
pub mod socket;

pub use tcpvs_command::DEFAULT_SOCKET;
