//! tcpvsadm: the admin CLI for tcpvsd. The control socket arrives with the
//! control-plane issue; until then this prints usage and exits with 2, as
//! ipvsadm does for a usage error.
fn main() {
    eprintln!(
        "tcpvsadm {}: the control socket is not implemented yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
