//! tcpvsadm's command line, in KTCPVS's syntax (short and long options, with
//! the original's bugs fixed: `-w` works, `-l` takes its argument), plus
//! ipvsadm's `-S`, `-R`, `-Z` and a few extensions.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use tcpvs_command::options::{self, OptionError, Options};
use tcpvs_command::{conn_limits, health_opts, validate, LimitOptions, ServiceLimits};
use tcpvs_command::{
    PassiveSpec, Protocol, RuleArgs, ServerArgs, ServiceArgs, ServiceSpec, TableError, Verb,
};

pub const USAGE: &str = "\
usage:
  tcpvsadm -A|-E -i ident [-s scheduler] [-l address[:port]] [-P port] [--sched-opt k=v,...]
                [--persistent seconds] [--forwarded-proto http|https] [--protocol http|rtsp]
                [--check type=tcp|http|rtsp,k=v,...|none] [--agent port=N,k=v,...|none]
                [--passive k=v,...] [--retries N] [--slowstart duration] [--max-body size]
                [--max-conns N] [--max-queue N] [--queue-timeout duration]
                [--max-conns-per-source N] [--rate-per-source N] [--burst-per-source N]
  tcpvsadm -D -i ident
  tcpvsadm -a|-e -i ident -r server-address [-w weight] [--state ready|drain|maint]
                [--max-conns N]
  tcpvsadm -d -i ident -r server-address
  tcpvsadm --add-rule -i ident -p pattern -r server-address [-m match-num]
  tcpvsadm --del-rule -i ident -p pattern -r server-address
  tcpvsadm --add-default|--del-default -i ident -r server-address
  tcpvsadm -L|--list [-n] [-i ident] [--stats]
  tcpvsadm -F|-C|--flush|--clear
  tcpvsadm -f|--load config-file     (TOML configuration or saved commands; replaces the table)
  tcpvsadm -S|--save                 (print the table as tcpvsadm commands)
  tcpvsadm -R|--restore              (apply saved commands from standard input)
  tcpvsadm -Z|--zero [-i ident]
  tcpvsadm --start|--stop [-i ident]
options: --socket PATH (default /run/tcpvsd.sock), -h|--help, -V|--version
schedulers: wlc (default; KTCPVS's http and phttp mean the same), rr, wrr, lc, sed, nq, sh, chash, lard, lardr
persistence: seconds (0 turns it off) or a duration such as 5m
check: type, interval (2s), timeout (1s), rise (2), fall (3); http also method (GET),
  path (/), host, status (200-399), body
agent: port, interval (2s), timeout (1s)
passive: max_fails (1; 0 off), fail_timeout (10s), on_5xx (no)
limits: 0 is no limit; --queue-timeout 0 is the connect timeout";

/// What the user asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Send this verb (boxed: a service's arguments are large).
    Verb(Box<Verb>),
    List {
        ident: Option<String>,
        stats: bool,
    },
    Save,
    Restore,
    Load(PathBuf),
    Help,
    Version,
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
    Help,
    Version,
}

/// Options that take a value, by their long name.
const VALUED: [&str; 26] = [
    "ident",
    "scheduler",
    "port",
    "listen",
    "real-server",
    "weight",
    "pattern",
    "match",
    "socket",
    "sched-opt",
    "persistent",
    "forwarded-proto",
    "protocol",
    "check",
    "agent",
    "passive",
    "retries",
    "slowstart",
    "max-body",
    "state",
    "max-conns",
    "max-queue",
    "queue-timeout",
    "max-conns-per-source",
    "rate-per-source",
    "burst-per-source",
];

fn long_name(short: char) -> Option<&'static str> {
    Some(match short {
        'i' => "ident",
        's' => "scheduler",
        'P' => "port",
        'l' => "listen",
        'r' => "real-server",
        'w' => "weight",
        'p' => "pattern",
        'm' => "match",
        'f' => "load",
        'n' => "numeric",
        _ => return None,
    })
}

fn op_of(name: &str) -> Option<Op> {
    Some(match name {
        "A" | "add-service" => Op::AddService,
        "E" | "edit-service" => Op::EditService,
        "D" | "delete-service" => Op::DelService,
        "a" | "add-server" => Op::AddServer,
        "e" | "edit-server" => Op::EditServer,
        "d" | "delete-server" => Op::DelServer,
        "add-rule" => Op::AddRule,
        "del-rule" | "delete-rule" => Op::DelRule,
        "add-default" => Op::AddDefault,
        "del-default" | "delete-default" => Op::DelDefault,
        "L" | "list" => Op::List,
        // ipvsadm clears its table with -C.
        "F" | "C" | "flush" | "clear" => Op::Flush,
        "S" | "save" => Op::Save,
        "R" | "restore" => Op::Restore,
        "Z" | "zero" => Op::Zero,
        "start" => Op::Start,
        "stop" => Op::Stop,
        "h" | "help" => Op::Help,
        "V" | "v" | "version" => Op::Version,
        _ => return None,
    })
}

/// Short options that take no value: the commands, and `-n`.
fn is_switch(short: char) -> bool {
    op_of(&short.to_string()).is_some() || short == 'n'
}

/// `-Ln` as `-L -n`, as ipvsadm reads it: a word of switches only is split
/// into one option each. Anything else (`-l127.0.0.1`, a value glued to its
/// option) is left whole.
fn split_switches(arg: String) -> Vec<String> {
    match arg.strip_prefix('-') {
        Some(shorts)
            if shorts.chars().count() > 1
                && !shorts.starts_with('-')
                && shorts.chars().all(is_switch) =>
        {
            shorts.chars().map(|c| format!("-{c}")).collect()
        }
        _ => vec![arg],
    }
}

/// Parses tcpvsadm's arguments (without the program name).
pub fn parse<I, S>(args: I) -> Result<Invocation, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args
        .into_iter()
        .map(Into::into)
        .flat_map(split_switches)
        .collect::<Vec<String>>()
        .into_iter();
    let mut op: Option<Op> = None;
    let mut load: Option<PathBuf> = None;
    let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut stats = false;
    let set_op = |new: Op, op: &mut Option<Op>| match op {
        Some(old) if *old != new => Err(usage("give only one command (-A, -a, -L, ...)")),
        _ => {
            *op = Some(new);
            Ok(())
        }
    };
    while let Some(arg) = args.next() {
        // Normalize to (name, inline value): `--x=v`, `--x`, `-x v`, `-xv`.
        let (name, inline): (String, Option<String>) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (long.to_string(), None),
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let flag = chars.next().unwrap_or('-');
            let rest: String = chars.collect();
            let name = match (op_of(&flag.to_string()), long_name(flag)) {
                // `-l` is the listen address, `-L` the listing.
                (_, Some(long)) => long.to_string(),
                (Some(_), None) => flag.to_string(),
                (None, None) => {
                    return Err(usage(format!("unknown option -{flag} (see tcpvsadm -h)")))
                }
            };
            (name, (!rest.is_empty()).then_some(rest))
        } else {
            return Err(usage(format!(
                "unexpected argument `{arg}` (see tcpvsadm -h)"
            )));
        };
        if let Some(new) = op_of(&name) {
            if inline.is_some() {
                return Err(usage(format!("{arg}: this command takes no value")));
            }
            set_op(new, &mut op)?;
            continue;
        }
        match name.as_str() {
            "load" => {
                set_op(Op::Load, &mut op)?;
                let file = match inline {
                    Some(v) => v,
                    None => args.next().ok_or_else(|| usage("-f needs a file"))?,
                };
                load = Some(PathBuf::from(file));
            }
            "numeric" => {}
            "stats" => stats = true,
            _ => {
                let key = VALUED
                    .iter()
                    .find(|k| **k == name || (name == "server" && **k == "real-server"))
                    .ok_or_else(|| usage(format!("unknown option --{name} (see tcpvsadm -h)")))?;
                let value = match inline {
                    Some(v) => v,
                    None => args
                        .next()
                        .ok_or_else(|| usage(format!("--{key} needs a value")))?,
                };
                if values.insert(key, value).is_some() {
                    return Err(usage(format!("--{key} given twice")));
                }
            }
        }
    }
    let socket = values.remove("socket").map(PathBuf::from);
    let op = op.ok_or_else(|| usage("no command given (see tcpvsadm -h)"))?;
    let command = build(op, &mut values, stats, load)?;
    if let Some(extra) = values.keys().next() {
        return Err(usage(format!("--{extra} does not apply to this command")));
    }
    Ok(Invocation { command, socket })
}

fn build(
    op: Op,
    values: &mut BTreeMap<&'static str, String>,
    stats: bool,
    load: Option<PathBuf>,
) -> Result<Command, UsageError> {
    let mut take = |key: &str| values.remove(key);
    let verb = match op {
        Op::Help => return Ok(Command::Help),
        Op::Version => return Ok(Command::Version),
        Op::Save => return Ok(Command::Save),
        Op::Restore => return Ok(Command::Restore),
        Op::Load => return Ok(Command::Load(load.unwrap_or_default())),
        Op::List => {
            let ident = take("ident");
            return Ok(Command::List { ident, stats });
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
            let args = RuleArgs {
                ident: ident(take("ident"))?,
                pattern: take("pattern").ok_or_else(|| usage("a rule needs -p pattern"))?,
                server: server(take("real-server"))?,
                match_group: take("match")
                    .map(|m| validate::match_group(&m).map_err(invalid))
                    .transpose()?,
                ..RuleArgs::default()
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

/// A real server given as `host:port` (names are resolved here, by tcpvsadm).
fn server(value: Option<String>) -> Result<String, UsageError> {
    let text = value.ok_or_else(|| usage("this command needs -r server-address:port"))?;
    let addr = resolve(&text)?.to_string();
    validate::server(&addr).map_err(invalid)?;
    Ok(addr)
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
    fn switches_combine_as_ipvsadm_reads_them() {
        let list = |line: &str| parse(split_words(line).unwrap()).unwrap().command;
        let listing = Command::List {
            ident: None,
            stats: false,
        };
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
        assert!(
            error("-LF").contains("only one command"),
            "{}",
            error("-LF")
        );
        assert!(error("-Lx").contains("-L"), "{}", error("-Lx"));
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
        assert!(error("-A -a -i web").contains("only one command"));
        assert!(error("-i web").contains("no command"));
        assert!(error("-L -q").contains("unknown option"));
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
