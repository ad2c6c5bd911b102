//! The state file: the rule table written after every successful edit, so a
//! restart loses no rule. Written atomically (temporary file, fsync, rename,
//! fsync of the directory): after a crash it holds the old table or the new
//! one, never half of either.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::table::TableSpec;

/// Writes the services of `spec` to `path` in the configuration format.
pub fn save(path: &Path, spec: &TableSpec) -> io::Result<()> {
    let text = tcpvs_command::config::services_to_toml(&spec.services);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the state file needs a file name",
        )
    })?;
    let temp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut file = File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&temp, path)?;
    File::open(dir)?.sync_all()
}
