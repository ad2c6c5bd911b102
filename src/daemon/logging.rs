//! The daemon's log: tracing to standard error.

use anyhow::Context;

/// Starts logging at `level` (a level or a tracing filter; `info` if none).
pub fn init_logging(level: Option<&str>) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level.unwrap_or("info"))
        .with_context(|| format!("bad log level `{}`", level.unwrap_or_default()))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}
