//! tcpvsadm's command line, in KTCPVS's syntax (short and long options, with
//! the original's bugs fixed: `-w` works, `-l` takes its argument), plus
//! ipvsadm's `-S`, `-R`, `-Z`, `-C`, `-n` and a few extensions. clap reads
//! the words (`cli.rs`); here the command is built from them, each value
//! checked by the validator the TOML file uses.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use tcpvs_command::options::{self, OptionError, Options};
use tcpvs_command::{conn_limits, health_opts, validate, LimitOptions, ServiceLimits};
use tcpvs_command::{
    PassiveSpec, Protocol, RuleArgs, ServerArgs, ServiceArgs, ServiceSpec, TableError, Verb,
};

use crate::cli::{Cli, Switches};

/// What the user asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Send this verb (boxed: a service's arguments are large).
    Verb(Box<Verb>),
    List(Listing),
    Save,
    Restore,
    Load(PathBuf),
    /// Print this help text.
    Help(String),
    Version,
}

/// What `-L` shows and how.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// One service only.
    pub ident: Option<String>,
    pub show: Show,
    /// `-n`: addresses and ports as numbers, not names.
    pub numeric: bool,
}

/// The listing's columns: ipvsadm's `-L`, `-L --stats`, `-L --rate`, or
/// the JSON view for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Show {
    #[default]
    Table,
    Stats,
    Rate,
    Json,
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub socket: Option<PathBuf>,
}

/// A usage error: exit status 2, as ipvsadm.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    /// The error as clap shows its own: the message, the usage line and
    /// where to find more.
    pub fn rendered(&self) -> String {
        Cli::command()
            .error(ErrorKind::InvalidValue, &self.0)
            .render()
            .to_string()
    }
}

impl From<clap::Error> for UsageError {
    /// clap's message and tips, without its usage (added when shown), so a
    /// restored line can say where it was.
    fn from(e: clap::Error) -> Self {
        let text = e.render().to_string();
        let message = text.split("\n\nUsage:").next().unwrap_or(&text);
        UsageError(message.trim_start_matches("error: ").trim_end().to_string())
    }
}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    AddService,
    EditService,
    DelService,
    AddServer,
    EditServer,
    DelServer,
    AddRule,
    DelRule,
    AddDefault,
    DelDefault,
    List,
    Flush,
    Load,
    Save,
    Restore,
    Zero,
    Start,
    Stop,
    Version,
}

impl Switches {
    /// The command switch given (clap lets one through at most).
    fn op(&self) -> Option<Op> {
        let switches = [
            (self.add_service, Op::AddService),
            (self.edit_service, Op::EditService),
            (self.delete_service, Op::DelService),
            (self.add_server, Op::AddServer),
            (self.edit_server, Op::EditServer),
            (self.delete_server, Op::DelServer),
            (self.add_rule, Op::AddRule),
            (self.del_rule, Op::DelRule),
            (self.add_default, Op::AddDefault),
            (self.del_default, Op::DelDefault),
            (self.list, Op::List),
            (self.flush, Op::Flush),
            (self.load.is_some(), Op::Load),
            (self.save, Op::Save),
            (self.restore, Op::Restore),
            (self.zero, Op::Zero),
            (self.start, Op::Start),
            (self.stop, Op::Stop),
            (self.version, Op::Version),
        ];
        switches
            .into_iter()
            .find_map(|(given, op)| given.then_some(op))
    }
}

/// Parses tcpvsadm's arguments (without the program name).
pub fn parse<I, S>(args: I) -> Result<Invocation, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let words = std::iter::once("tcpvsadm".to_string()).chain(args.into_iter().map(Into::into));
    let cli = match Cli::try_parse_from(words) {
        Ok(cli) => cli,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => {
            return Ok(Invocation {
                command: Command::Help(e.render().to_string()),
                socket: None,
            })
        }
        Err(e) => return Err(e.into()),
    };
    let op = cli.command.op().ok_or_else(|| {
        usage("no command given: give one of -A, -E, -D, -a, -e, -d, --add-rule, -L, -S, ...")
    })?;
    let show = match (cli.stats, cli.rate, cli.json) {
        (true, _, _) => Show::Stats,
        (_, true, _) => Show::Rate,
        (_, _, true) => Show::Json,
        _ => Show::Table,
    };
    let mut values = cli.values;
    // Repeatable, so not among the single values.
    let mut headers = std::mem::take(&mut values.header);
    let mut values: BTreeMap<&'static str, String> = values.given().into_iter().collect();
    let mut command = build(op, &mut values, &mut headers, cli.command.load)?;
    if let Command::List(listing) = &mut command {
        listing.show = show;
        listing.numeric = cli.numeric;
    }
    if let Some(extra) = values
        .keys()
        .next()
        .copied()
        .or_else(|| (!headers.is_empty()).then_some("header"))
    {
        return Err(usage(format!("--{extra} does not apply to this command")));
    }
    Ok(Invocation {
        command,
        socket: cli.socket,
    })
}

fn build(
    op: Op,
    values: &mut BTreeMap<&'static str, String>,
    headers: &mut Vec<String>,
    load: Option<PathBuf>,
) -> Result<Command, UsageError> {
    let mut take = |key: &str| values.remove(key);
    let verb = match op {
        Op::Version => return Ok(Command::Version),
        Op::Save => return Ok(Command::Save),
        Op::Restore => return Ok(Command::Restore),
        Op::Load => return Ok(Command::Load(load.unwrap_or_default())),
        Op::List => {
            return Ok(Command::List(Listing {
                ident: take("ident"),
                ..Listing::default()
            }))
        }
        Op::Flush => Verb::Flush,
        Op::Zero => Verb::Zero {
            ident: take("ident"),
        },
        Op::Start => Verb::Start {
            ident: take("ident"),
        },
        Op::Stop => Verb::Stop {
            ident: take("ident"),
        },
        Op::AddService | Op::EditService => {
            let ident = ident(take("ident"))?;
            let listen = listen_address(take("listen"), take("port"))?;
            if op == Op::AddService && listen.is_none() {
                return Err(usage("-A needs -l address[:port] or -P port"));
            }
            let scheduler = take("scheduler");
            let sched_opts = take("sched-opt").map(|o| sched_opts(&o)).transpose()?;
            if let Some(given) = &sched_opts {
                // The options of a scheduler known here (named, or -A's
                // default); those of -E alone go to the service's own
                // scheduler, which only tcpvsd knows.
                let kind = match &scheduler {
                    Some(name) => validate::scheduler(name).ok(),
                    None => (op == Op::AddService).then_some(ServiceSpec::DEFAULT_SCHEDULER),
                };
                if let Some(kind) = kind {
                    let service = validate::ident(&ident).map_err(invalid)?;
                    validate::sched_opts(kind, given)
                        .map_err(|refused| invalid(refused.of_service(&service, kind)))?;
                }
            }
            let args = ServiceArgs {
                ident,
                listen: listen.map(|a| a.to_string()),
                scheduler,
                sched_opts,
                protocol: take("protocol"),
                forwarded_proto: take("forwarded-proto")
                    .map(|p| checked(&p, validate::forwarded_proto))
                    .transpose()?,
                persistent: take("persistent")
                    .map(|p| {
                        let timeout = validate::persistence(&p).map_err(invalid)?;
                        Ok::<_, UsageError>(timeout.map_or(0, |t| t.as_secs()))
                    })
                    .transpose()?,
                check: take("check"),
                agent: take("agent"),
                passive: take("passive"),
                retries: take("retries")
                    .map(|n| validate::retries(&n).map_err(invalid))
                    .transpose()?,
                slowstart: take("slowstart")
                    .map(|d| checked(&d, validate::slowstart))
                    .transpose()?,
                max_body: take("max-body")
                    .map(|size| checked(&size, validate::max_body))
                    .transpose()?,
                limits: limit_options(&mut take)?,
            };
            health_args(&args, op)?;
            if op == Op::AddService {
                Verb::AddService(args)
            } else {
                Verb::EditService(args)
            }
        }
        Op::DelService => Verb::DelService {
            ident: ident(take("ident"))?,
        },
        Op::AddServer | Op::EditServer => {
            let args = ServerArgs {
                ident: ident(take("ident"))?,
                server: server(take("real-server"))?,
                weight: take("weight").map(|w| weight(&w)).transpose()?,
                state: take("state")
                    .map(|s| validate::admin_state(&s).map_err(invalid))
                    .transpose()?,
                max_conns: take("max-conns")
                    .map(|n| conn_limits::max_conns(&n).map_err(invalid))
                    .transpose()?,
            };
            if op == Op::AddServer {
                Verb::AddServer(args)
            } else {
                Verb::EditServer(args)
            }
        }
        Op::DelServer => Verb::DelServer {
            ident: ident(take("ident"))?,
            server: server(take("real-server"))?,
        },
        Op::AddRule | Op::DelRule => {
            // Checked here as tcpvsd reads them, with the file's messages.
            let host = take("host")
                .map(|h| checked(&h, validate::host_pattern))
                .transpose()?;
            for header in headers.iter() {
                checked(header, validate::header_match)?;
            }
            let pattern = take("pattern");
            if pattern.is_none() && host.is_none() && headers.is_empty() {
                return Err(usage("a rule needs -p pattern, --host or --header"));
            }
            let args = RuleArgs {
                ident: ident(take("ident"))?,
                // Empty: any target, the rule being on the host or headers.
                pattern: pattern.unwrap_or_default(),
                server: server(take("real-server"))?,
                match_group: take("match")
                    .map(|m| validate::match_group(&m).map_err(invalid))
                    .transpose()?,
                host,
                headers: std::mem::take(headers),
            };
            if op == Op::AddRule {
                Verb::AddRule(args)
            } else {
                Verb::DelRule(args)
            }
        }
        Op::AddDefault | Op::DelDefault => {
            let ident = ident(take("ident"))?;
            let server = server(take("real-server"))?;
            if op == Op::AddDefault {
                Verb::AddDefault { ident, server }
            } else {
                Verb::DelDefault { ident, server }
            }
        }
    };
    Ok(Command::Verb(Box::new(verb)))
}

/// `--max-conns`, `--max-queue`, ... of `-A`/`-E`, each checked here as
/// tcpvsd reads it; `None` when none is given.
fn limit_options(
    take: &mut impl FnMut(&str) -> Option<String>,
) -> Result<Option<LimitOptions>, UsageError> {
    let mut given = LimitOptions::new();
    let mut probe = ServiceLimits::default();
    for name in ServiceLimits::NAMES {
        if let Some(text) = take(&name.replace('_', "-")) {
            probe.set(name, &text).map_err(invalid)?;
            given.insert(name.to_string(), text);
        }
    }
    Ok((!given.is_empty()).then_some(given))
}

fn ident(value: Option<String>) -> Result<String, UsageError> {
    let ident = value.ok_or_else(|| usage("this command needs -i ident"))?;
    checked(&ident, validate::ident)
}

fn weight(text: &str) -> Result<u32, UsageError> {
    validate::weight(text)
        .map(|w| u32::from(w.0))
        .map_err(invalid)
}

/// A value refused by its validator: a usage error with the validator's own
/// message, the one a TOML file gets for the same value.
fn invalid(error: TableError) -> UsageError {
    usage(error.to_string())
}

/// `text`, once its validator accepts it (the daemon reads it again).
fn checked<T>(
    text: &str,
    validator: fn(&str) -> Result<T, TableError>,
) -> Result<String, UsageError> {
    validator(text).map(|_| text.to_string()).map_err(invalid)
}

/// A real server given as `IP:PORT` or `NAME:PORT`. A name goes to tcpvsd
/// as written: tcpvsd resolves it, keeps it (listings, the state file) and
/// looks it up again as the file's names are.
fn server(value: Option<String>) -> Result<String, UsageError> {
    let text = value.ok_or_else(|| usage("this command needs -r server-address:port"))?;
    checked(&text, validate::server_text)
}

/// An address, `IP:PORT` as the file takes it, or `name:port` resolved here;
/// refused with the validator's message.
fn resolve(text: &str) -> Result<SocketAddr, UsageError> {
    validate::address(text).or_else(|refused| {
        let named = text.contains(':') && text.parse::<SocketAddr>().is_err();
        named
            .then(|| text.to_socket_addrs().ok()?.next())
            .flatten()
            .ok_or_else(|| invalid(refused))
    })
}

/// `-l address[:port]` and `-P port`; an address without a port takes `-P`,
/// `-P` alone listens on every address (KTCPVS's default).
fn listen_address(
    listen: Option<String>,
    port: Option<String>,
) -> Result<Option<SocketAddr>, UsageError> {
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| usage(format!("-P {p}: not a port number")))
        })
        .transpose()?;
    match (listen, port) {
        (None, None) => Ok(None),
        (None, Some(port)) => Ok(Some(SocketAddr::from(([0, 0, 0, 0], port)))),
        (Some(text), port) => {
            if let Ok(addr) = text.parse::<SocketAddr>() {
                return Ok(Some(match port {
                    Some(port) => SocketAddr::new(addr.ip(), port),
                    None => addr,
                }));
            }
            let host = text.trim_start_matches('[').trim_end_matches(']');
            match (host.parse::<std::net::IpAddr>(), port) {
                (Ok(ip), Some(port)) => Ok(Some(SocketAddr::new(ip, port))),
                // As the file says it: an address needs a port.
                (Ok(_), None) => Err(invalid(TableError::NoPort(text))),
                (Err(_), _) => resolve(&text).map(Some),
            }
        }
    }
}

/// `low=25,high=65` (a value may hold commas, as in `\d{1,3}`).
fn sched_opts(text: &str) -> Result<Options, UsageError> {
    options::split(text).map_err(|e| usage(format!("--sched-opt: {e}")))
}

/// `--check`, `--agent` and `--passive`, read here as tcpvsd reads them, so
/// a bad value is refused before any daemon sees it, with the file's
/// message; and a check that does not fit the protocol, when the protocol
/// is known here (given, or `-A`'s default).
fn health_args(args: &ServiceArgs, op: Op) -> Result<(), UsageError> {
    let refused = |e: OptionError| invalid(TableError::BadHealthOption(e));
    let check = args
        .check
        .as_deref()
        .map(|text| health_opts::optional("check", text, health_opts::check))
        .transpose()
        .map_err(refused)?
        .flatten();
    if let Some(text) = &args.agent {
        health_opts::optional("agent", text, health_opts::agent).map_err(refused)?;
    }
    if let Some(text) = &args.passive {
        let given = health_opts::listed("passive", text).map_err(refused)?;
        health_opts::passive(&given, &PassiveSpec::default()).map_err(refused)?;
    }
    let protocol = match &args.protocol {
        Some(name) => validate::protocol(name).ok(),
        None => (op == Op::AddService).then_some(Protocol::Http),
    };
    if let (Some(check), Some(protocol)) = (check, protocol) {
        let service = validate::ident(&args.ident).map_err(invalid)?;
        validate::check_fits(&service, protocol, &check).map_err(invalid)?;
    }
    Ok(())
}

/// Splits a saved command line into words: single and double quotes and
/// backslashes as in a POSIX shell (what `-S` writes).
pub fn split_words(line: &str) -> Result<Vec<String>, UsageError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(usage("unterminated ' quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(usage("unterminated \" quote")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(usage("unterminated \" quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next().ok_or_else(|| usage("a line ends in \\"))?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Quotes `word` for a saved command line when it needs it.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-[]".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(line: &str) -> Verb {
        match parse(split_words(line).unwrap()).unwrap().command {
            Command::Verb(v) => *v,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        parse(split_words(line).unwrap()).unwrap_err().0
    }

    #[test]
    fn manual_example_parses() {
        assert_eq!(
            verb("-A -i web -s http -P 80"),
            Verb::AddService(ServiceArgs {
                ident: "web".into(),
                listen: Some("0.0.0.0:80".into()),
                scheduler: Some("http".into()),
                ..Default::default()
            })
        );
        assert_eq!(
            verb("-a -i web -r 192.168.10.1:80"),
            Verb::AddServer(ServerArgs {
                ident: "web".into(),
                server: "192.168.10.1:80".into(),
                weight: None,
                state: None,
                max_conns: None,
            })
        );
        assert_eq!(
            verb("--add-rule -i web --pattern=^/cgi-bin/ -r 192.168.10.1:80"),
            Verb::AddRule(RuleArgs {
                ident: "web".into(),
                pattern: "^/cgi-bin/".into(),
                server: "192.168.10.1:80".into(),
                ..RuleArgs::default()
            })
        );
    }

    #[test]
    fn rules_on_host_and_headers_and_servers_by_name() {
        assert_eq!(
            verb("--add-rule -i web --host '^img\\.' --header 'X-Tenant: ^a' --header 'X-Plan:' -r 10.0.0.1:80"),
            Verb::AddRule(RuleArgs {
                ident: "web".into(),
                pattern: String::new(),
                server: "10.0.0.1:80".into(),
                host: Some("^img\\.".into()),
                headers: vec!["X-Tenant: ^a".into(), "X-Plan:".into()],
                ..RuleArgs::default()
            })
        );
        // A name goes to tcpvsd as written, for it to resolve and keep.
        assert_eq!(
            verb("-d -i web -r app1.example:8080"),
            Verb::DelServer {
                ident: "web".into(),
                server: "app1.example:8080".into(),
            }
        );
        for (line, message) in [
            (
                "--add-rule -i web -r 10.0.0.1:80",
                "a rule needs -p pattern, --host or --header",
            ),
            (
                "--add-rule -i web --header X-Tenant -r 10.0.0.1:80",
                "X-Tenant",
            ),
            ("--add-rule -i web --host '(' -r 10.0.0.1:80", "("),
            ("-L --header 'X-Tenant: a'", "--header does not apply"),
            ("-a -i web -r app_1:80", "app_1:80"),
        ] {
            let refused = parse(split_words(line).unwrap()).unwrap_err().0;
            assert!(refused.contains(message), "{line}: {refused}");
        }
    }

    #[test]
    fn switches_combine_as_ipvsadm_reads_them() {
        let list = |line: &str| parse(split_words(line).unwrap()).unwrap().command;
        let listing = Command::List(Listing {
            numeric: true,
            ..Listing::default()
        });
        assert_eq!(list("-Ln"), listing);
        assert_eq!(list("-nL"), listing);
        assert_eq!(list("-L -n"), listing);
        assert_eq!(verb("-C"), Verb::Flush);
        assert_eq!(verb("--clear"), Verb::Flush);
        // A value glued to its option is not a bundle of switches.
        assert_eq!(
            verb("-A -i web -l127.0.0.1 -P 81"),
            verb("-A -i web -l 127.0.0.1 -P 81")
        );
        assert_eq!(
            error("-LF"),
            "the argument '--list' cannot be used with '--flush'"
        );
        assert!(error("-Lx").contains("'-x'"), "{}", error("-Lx"));
    }

    #[test]
    fn weight_and_listen_work() {
        assert_eq!(
            verb("-e -i web -r 127.0.0.1:80 -w 0"),
            Verb::EditServer(ServerArgs {
                ident: "web".into(),
                server: "127.0.0.1:80".into(),
                weight: Some(0),
                state: None,
                max_conns: None,
            })
        );
        let Verb::AddService(args) = verb("-A -i web -l 127.0.0.1:8080") else {
            panic!()
        };
        assert_eq!(args.listen.as_deref(), Some("127.0.0.1:8080"));
        let Verb::AddService(args) =
            verb("-A -i web -l127.0.0.1 -P 81 -s lard --sched-opt low=25,high=65")
        else {
            panic!()
        };
        assert_eq!(args.listen.as_deref(), Some("127.0.0.1:81"));
        assert_eq!(args.sched_opts.unwrap()["high"], "65");
        let Verb::EditService(args) = verb(r"-E -i web --sched-opt 'dynamic=^/\d{1,3}/,low=5'")
        else {
            panic!()
        };
        let options = args.sched_opts.unwrap();
        assert_eq!(options["dynamic"], r"^/\d{1,3}/");
        assert_eq!(options["low"], "5");
        assert!(error("-E -i web --sched-opt ,x").contains("`x` is not name=value"));
    }

    #[test]
    fn sched_options_checked_for_a_scheduler_known_here() {
        assert_eq!(
            error("-E -i web -s lard --sched-opt low=70"),
            "scheduler lard of service `web`: low=70 must be below high=65"
        );
        assert_eq!(
            error("-A -i web -P 80 --sched-opt low=25"),
            "scheduler wlc of service `web`: unknown option `low` (wlc takes none)"
        );
        assert_eq!(
            error("-E -i web -s phttp --sched-opt low=25"),
            "scheduler wlc of service `web`: unknown option `low` (wlc takes none)"
        );
        assert!(error("-A -i web -P 80 -s chash --sched-opt key=query").contains("header:NAME"));
        // The service's own scheduler, or a name it does not know: tcpvsd says.
        let Verb::EditService(args) = verb("-E -i web --sched-opt low=25") else {
            panic!()
        };
        assert_eq!(args.sched_opts.unwrap()["low"], "25");
        assert!(matches!(
            verb("-E -i web -s nosuch --sched-opt low=25"),
            Verb::EditService(_)
        ));
        assert!(matches!(
            verb("-A -i web -P 80 -s lardr --sched-opt hold=2m,low=10"),
            Verb::AddService(_)
        ));
    }

    #[test]
    fn usage_errors() {
        assert!(error("-a -i web -r 127.0.0.1:80 -w 65536").contains("0 to 65535"));
        assert!(error("-a -i web -r 127.0.0.1:80 -w -1").contains("0 to 65535"));
        assert!(error("-a -i web -r nonsense").contains("needs a port"));
        assert!(error("-A -i web").contains("-l address"));
        assert!(error("-A -a -i web").contains("cannot be used with"));
        assert!(error("-i web").contains("no command"));
        assert!(error("-L -q").contains("unexpected argument '-q' found"));
        assert!(error("-A -i this-ident-is-too-long -P 80").contains("invalid service ident"));
        assert!(error("-F -i web").contains("--ident does not apply"));
    }

    #[test]
    fn words_and_quotes_round_trip() {
        for word in ["^/images/", "a b", "it's", "\\.(jpg|png)$", "", "x\"y"] {
            let line = format!("--add-rule -p {}", quote(word));
            assert_eq!(
                split_words(&line).unwrap(),
                ["--add-rule", "-p", word],
                "{line}"
            );
        }
        assert!(split_words("-p 'open").is_err());
    }

    #[test]
    fn health_options_pass_through_once_checked_here() {
        let Verb::AddService(args) = verb(
            "-A -i web -P 80 --check type=http,path=/health,body=a,b --agent port=9999 \
             --passive max_fails=3 --retries 0 --slowstart 30s",
        ) else {
            panic!()
        };
        assert_eq!(
            args.check.as_deref(),
            Some("type=http,path=/health,body=a,b")
        );
        assert_eq!(args.agent.as_deref(), Some("port=9999"));
        assert_eq!(args.passive.as_deref(), Some("max_fails=3"));
        assert_eq!(
            (args.retries, args.slowstart.as_deref()),
            (Some(0), Some("30s"))
        );
        let Verb::EditService(args) = verb("-E -i web --check none --agent none") else {
            panic!()
        };
        assert_eq!(
            (args.check.as_deref(), args.agent.as_deref()),
            (Some("none"), Some("none"))
        );
        let Verb::EditServer(args) = verb("-e -i web -r 127.0.0.1:80 --state drain") else {
            panic!()
        };
        assert_eq!(args.state, Some(tcpvs_command::AdminState::Drain));
    }

    #[test]
    fn limit_options_pass_through_once_checked_here() {
        let Verb::EditService(args) =
            verb("-E -i web --max-conns 100 --queue-timeout 2s --rate-per-source 5")
        else {
            panic!()
        };
        let limits = args.limits.unwrap();
        assert_eq!(
            limits
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            [
                ("max_conns", "100"),
                ("queue_timeout", "2s"),
                ("rate_per_source", "5")
            ]
        );
        let Verb::EditServer(args) = verb("-e -i web -r 127.0.0.1:80 --max-conns 2") else {
            panic!()
        };
        assert_eq!(args.max_conns, Some(2));
        assert_eq!(
            error("-E -i web --max-queue x"),
            "`x` is not a number of queued requests (0: no limit)"
        );
        assert_eq!(
            error("-a -i web -r 127.0.0.1:80 --max-conns -1"),
            "`-1` is not a number of connections (0: no limit)"
        );
        assert_eq!(
            error("-e -i web -r 127.0.0.1:80 --max-queue 3"),
            "--max-queue does not apply to this command"
        );
    }

    #[test]
    fn bad_health_options_are_refused_here() {
        let cases = [
            (
                "-E -i web --check type=tcp,rise=0",
                "check rise: `0` is not a number from 1 to 100",
            ),
            ("-E -i web --check ,x", "check: `x` is not name=value"),
            (
                "-E -i web --agent port=1,interval=1s,timeout=1s",
                "agent: timeout 1s must be below interval 1s",
            ),
            (
                "-E -i web --passive fail_timeout=500ms",
                "passive fail_timeout: `500ms` is not a duration from 1s to 1h",
            ),
            (
                "-E -i web --retries 11",
                "`11` is not a number of retries from 0 to 10",
            ),
            (
                "-E -i web --slowstart 2h",
                "`2h` is not a duration from 0s (off) to 1h",
            ),
            (
                "-e -i web -r 127.0.0.1:80 --state up",
                "unknown state `up` (known: ready, drain, maint)",
            ),
            (
                "-A -i web -P 80 --check type=rtsp",
                "service `web` speaks http: a check of type rtsp does not fit \
                 (give type=http or type=tcp)",
            ),
            (
                "-E -i web --protocol rtsp --check type=http",
                "service `web` speaks rtsp: a check of type http does not fit \
                 (give type=rtsp or type=tcp)",
            ),
            (
                "-D -i web --state drain",
                "--state does not apply to this command",
            ),
        ];
        for (line, message) in cases {
            assert_eq!(error(line), message, "{line}");
        }
        // The protocol of the service: tcpvsd knows it, and says.
        assert!(matches!(
            verb("-E -i web --check type=rtsp"),
            Verb::EditService(_)
        ));
    }
}
