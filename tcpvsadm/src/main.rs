//! tcpvsadm: edit the rule table of a running tcpvsd over its control socket,
//! with KTCPVS's syntax. Exit status: 0 done, 1 tcpvsd refused or could not be
//! reached, 2 a usage error (as ipvsadm).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tcpvs_command::{TableView, Verb, DEFAULT_SOCKET};
use tcpvsadm::args::{self, Command, Invocation, UsageError, USAGE};
use tcpvsadm::client::{Client, ClientError};
use tcpvsadm::print;

/// Why tcpvsadm failed, and so its exit status.
enum Failure {
    Usage(String),
    Daemon(ClientError),
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Self {
        Failure::Usage(e.0)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Daemon(e)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("tcpvsadm: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Daemon(e)) => {
            eprintln!("tcpvsadm: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<(), Failure> {
    let Invocation { command, socket } = args::parse(std::env::args().skip(1))?;
    let socket = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    match command {
        Command::Help => println!("{USAGE}"),
        Command::Version => println!("tcpvsadm {}", env!("CARGO_PKG_VERSION")),
        Command::Verb(verb) => {
            Client::connect(&socket)?.call(*verb)?;
        }
        Command::List { ident, stats } => {
            let view = list(&socket, ident)?;
            print!("{}", print::listing(&view, stats));
        }
        Command::Save => print!("{}", print::saved(&list(&socket, None)?)),
        Command::Restore => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::Usage(format!("reading standard input: {e}")))?;
            let verbs = saved_verbs(&text, "standard input")?;
            Client::connect(&socket)?.call(Verb::Batch { verbs })?;
        }
        Command::Load(path) => {
            // Loading a file makes the table exactly the file, in one step.
            let mut verbs = vec![Verb::Flush];
            verbs.extend(file_verbs(&path)?);
            Client::connect(&socket)?.call(Verb::Batch { verbs })?;
        }
    }
    Ok(())
}

fn list(socket: &Path, ident: Option<String>) -> Result<TableView, Failure> {
    Client::connect(socket)?
        .call(Verb::List { ident })?
        .ok_or_else(|| Failure::Daemon(ClientError::BadReply("a listing without a table".into())))
}

/// Saved commands (what `-S` prints), one per line; `#` starts a comment.
fn saved_verbs(text: &str, source: &str) -> Result<Vec<Verb>, Failure> {
    let mut verbs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: UsageError| Failure::Usage(format!("{source}, line {}: {}", number + 1, e.0));
        let words = args::split_words(line).map_err(at)?;
        match args::parse(words).map_err(at)?.command {
            Command::Verb(verb) if verb.edits() => verbs.push(*verb),
            _ => {
                let message = format!(
                    "{source}, line {}: only table edits can be restored",
                    number + 1
                );
                return Err(Failure::Usage(message));
            }
        }
    }
    Ok(verbs)
}

/// A file for `-f`: a TOML configuration (its services), or saved commands.
fn file_verbs(path: &Path) -> Result<Vec<Verb>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    let looks_like_commands = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with('-'));
    if looks_like_commands {
        return saved_verbs(&text, &path.display().to_string());
    }
    let config =
        tcpvs_command::config::parse(&text, path).map_err(|e| Failure::Usage(e.to_string()))?;
    // Through the same text as `-S`, so both forms mean exactly the same.
    let view = TableView::of(0, &config.table.services);
    saved_verbs(&print::saved(&view), &path.display().to_string())
}
