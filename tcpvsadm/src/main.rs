//! tcpvsadm: edit the rule table of a running tcpvsd over its control socket,
//! with KTCPVS's syntax. Exit status: 0 done, 1 tcpvsd refused or could not be
//! reached, 2 a usage error (as ipvsadm).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tcpvs_command::{TableView, Verb, DEFAULT_SOCKET};
use tcpvsadm::args::{self, Command, Invocation, Listing, Show, UsageError};
use tcpvsadm::client::{Client, ClientError};
use tcpvsadm::names::Names;
use tcpvsadm::print;

/// Why tcpvsadm failed, and so its exit status.
enum Failure {
    /// The command line: clap's message and usage, exit 2.
    Usage(String),
    /// A file or standard input (`-f`, `-R`): where and why, exit 2.
    Input(String),
    /// tcpvsd refused or could not be reached: exit 1.
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
            eprint!("{}", UsageError(message).rendered());
            ExitCode::from(2)
        }
        Err(Failure::Input(message)) => {
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
        Command::Help(text) => print!("{text}"),
        Command::Version => println!("tcpvsadm {}", env!("CARGO_PKG_VERSION")),
        Command::Verb(verb) => {
            Client::connect(&socket)?.call(*verb)?;
        }
        Command::List(Listing {
            ident,
            show,
            numeric,
        }) => {
            let view = list(&socket, ident)?;
            if show == Show::Json {
                let json = serde_json::to_string_pretty(&view)
                    .map_err(|e| Failure::Daemon(ClientError::BadReply(e.to_string())))?;
                println!("{json}");
            } else {
                print!("{}", print::listing(&view, show, &mut Names::new(numeric)));
            }
        }
        Command::Save => print!("{}", print::saved(&list(&socket, None)?)),
        Command::Restore => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::Input(format!("reading standard input: {e}")))?;
            let verbs = saved_verbs(&text, "standard input")?;
            Client::connect(&socket)?.call(Verb::Batch { verbs })?;
        }
        Command::Load(path) => {
            // Loading a file makes the table exactly the file, in one step.
            Client::connect(&socket)?.call(file_verb(&path)?)?;
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
        let at = |e: UsageError| Failure::Input(format!("{source}, line {}: {}", number + 1, e.0));
        let words = args::split_words(line).map_err(at)?;
        match args::parse(words).map_err(at)?.command {
            Command::Verb(verb) if verb.edits() => verbs.push(*verb),
            _ => {
                let message = format!(
                    "{source}, line {}: only table edits can be restored",
                    number + 1
                );
                return Err(Failure::Input(message));
            }
        }
    }
    Ok(verbs)
}

/// What `-f FILE` sends: saved commands (what `-S` prints) replace the
/// table in one batch; a TOML configuration is sent whole, for tcpvsd to
/// apply as it applies its file on SIGHUP (services, settings and log level
/// at once). Either is checked here first, so a mistake is refused at its
/// line before any daemon sees it.
fn file_verb(path: &Path) -> Result<Verb, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Input(format!("{}: {e}", path.display())))?;
    let looks_like_commands = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with('-'));
    let source = path.display().to_string();
    if looks_like_commands {
        let mut verbs = vec![Verb::Flush];
        verbs.extend(saved_verbs(&text, &source)?);
        return Ok(Verb::Batch { verbs });
    }
    let load = Verb::Load { source, text };
    // The same check tcpvsd makes: every line read, every value validated.
    // Names are tcpvsd's to look up (a name failing here for a moment
    // would refuse a file tcpvsd takes, keeping the address it had).
    load.apply_with(
        &mut tcpvs_command::TableSpec::default(),
        &tcpvs_command::resolve::Offline,
    )
    .map_err(|e| Failure::Input(e.to_string()))?;
    Ok(load)
}
