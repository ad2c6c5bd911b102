//! tcpvsadm's man page and shell completions, from its clap definition
//! (see ../build/manual.rs for where they go).

use clap::CommandFactory;

#[path = "src/cli.rs"]
#[allow(dead_code)]
mod cli;
#[path = "../build/manual.rs"]
mod manual;

fn main() {
    println!("cargo:rerun-if-changed=src/cli.rs");
    println!("cargo:rerun-if-changed=../build/manual.rs");
    // The page shows each command with its options, as the KTCPVS manual.
    let synopsis = cli::SYNOPSIS.trim_start_matches("Usage: ");
    manual::generate(cli::Cli::command().override_usage(synopsis));
}
