//! tcpvsd: the tcpvs daemon (its code is the library's `daemon` module).

fn main() -> std::process::ExitCode {
    tcpvs::daemon::main()
}
