//! The control plane: typed verbs (`command`), the unix socket that receives
//! them (`socket`), the client side used by tcpvsadm (`client`), and the place
//! where an edit becomes a new table (`plane`).

pub mod client;
pub mod command;
pub mod plane;
pub mod socket;

/// Where tcpvsd listens for tcpvsadm unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/tcpvsd.sock";
