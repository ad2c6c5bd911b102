//! A binary's man page (section 8) and shell completions (bash, zsh, fish),
//! written at build time from its clap definition. Build scripts include
//! this file (`#[path]`): tcpvsadm/build.rs for tcpvsadm, the root build
//! script for tcpvsd.
//!
//! They go to OUT_DIR and, for an operator to find and install, to
//! `target/<profile>/share/man/man8/` and `target/<profile>/share/completions/`.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Writes the man page and completions of `cmd`; a place that cannot be
/// written is a warning, not a failed build.
pub fn generate(cmd: clap::Command) {
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        println!("cargo:warning=no OUT_DIR: no man page or completions written");
        return;
    };
    let mut places = vec![out.clone()];
    // OUT_DIR is target/<profile>/build/<package>-<hash>/out.
    if let Some(profile) = out.ancestors().nth(3) {
        places.push(profile.join("share"));
    }
    for place in places {
        if let Err(e) = write_all(cmd.clone(), &place) {
            println!("cargo:warning={}: {e}", place.display());
        }
    }
}

fn write_all(mut cmd: clap::Command, place: &Path) -> std::io::Result<()> {
    let name = cmd.get_name().to_string();
    let man = place.join("man").join("man8");
    std::fs::create_dir_all(&man)?;
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut page)?;
    std::fs::write(man.join(format!("{name}.8")), page)?;
    let completions = place.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, &name, &completions)?;
    }
    Ok(())
}
