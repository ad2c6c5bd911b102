//! Build-time steps of the tcpvs package; each lives in a file of its own
//! under build/.

#[path = "build/manual.rs"]
mod manual;
#[path = "build/third_party_tools.rs"]
mod third_party_tools;
// tcpvsd's command line, self-contained (std and clap only) so that its man
// page and completions are made from the definition the daemon parses with.
#[path = "src/daemon/cli.rs"]
#[allow(dead_code)]
mod tcpvsd_cli;

fn main() {
    third_party_tools::emit();
    println!("cargo:rerun-if-changed=src/daemon/cli.rs");
    println!("cargo:rerun-if-changed=build/manual.rs");
    manual::generate(<tcpvsd_cli::Cli as clap::CommandFactory>::command());
}
