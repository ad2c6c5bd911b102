//! tcpvsadm's command line as clap sees it: KTCPVS's and ipvsadm's syntax,
//! where the command is one switch among several (`-A`, `-a`, `-L`, ...), not
//! a subcommand. Values stay text here; `args.rs` checks them with the
//! validators the TOML file uses, so both refuse a value with one message.
//!
//! This file uses nothing but std and clap: `build.rs` includes it to write
//! the man page and the shell completions.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser};

/// The usage line errors end with.
pub const USAGE: &str = "\
tcpvsadm COMMAND [OPTIONS], COMMAND one of -A -E -D -a -e -d -L -F -f -S -R -Z
       --add-rule --del-rule --add-default --del-default --start --stop (see tcpvsadm -h)";

/// The synopsis, in the KTCPVS manual's words (clap's usage line cannot say
/// which options go with which command), at the top of the help.
pub const SYNOPSIS: &str = "\
Usage: tcpvsadm -A|-E -i ident [-s scheduler] [-l address[:port]] [-P port] [--sched-opt k=v,...]
                [--persistent seconds] [--forwarded-proto http|https] [--protocol http|rtsp]
                [--check type=tcp|http|rtsp,k=v,...|none] [--agent port=N,k=v,...|none]
                [--passive k=v,...] [--retries N] [--slowstart duration] [--max-body size]
                [--max-conns N] [--max-queue N] [--queue-timeout duration]
                [--max-conns-per-source N] [--rate-per-source N] [--burst-per-source N]
       tcpvsadm -D -i ident
       tcpvsadm -a|-e -i ident -r server-address [-w weight] [--state ready|drain|maint]
                [--max-conns N]
       tcpvsadm -d -i ident -r server-address
       tcpvsadm --add-rule -i ident [-p pattern] [--host regex] [--header 'name: regex']...
                -r server-address [-m match-num]
       tcpvsadm --del-rule -i ident [-p pattern] [--host regex] [--header 'name: regex']...
                -r server-address
       tcpvsadm --add-default|--del-default -i ident -r server-address
       tcpvsadm -L|--list [-n] [-i ident] [--stats|--rate|--json]
       tcpvsadm -F|-C|--flush|--clear
       tcpvsadm -f|--load config-file
       tcpvsadm -S|--save
       tcpvsadm -R|--restore
       tcpvsadm -Z|--zero [-i ident]
       tcpvsadm --start|--stop [-i ident]";

/// What the option values mean, after the options.
pub const NOTES: &str = "\
Schedulers: wlc (default; KTCPVS's http and phttp mean the same), rr, wrr, lc, sed, nq,
  sh, chash, lard, lardr.
Persistence: seconds (0 turns it off) or a duration such as 5m.
Check: type, interval (2s), timeout (1s), rise (2), fall (3); http also method (GET),
  path (/), host, status (200-399), body.
Agent: port, interval (2s), timeout (1s).
Passive: max_fails (1; 0 off), fail_timeout (10s), on_5xx (no).
Limits: 0 is no limit; --queue-timeout 0 is the connect timeout.
Exit status: 0 done, 1 tcpvsd refused or could not be reached, 2 a usage error.";

/// Administer the rule table of a running tcpvsd.
#[derive(Debug, Parser)]
#[command(
    name = "tcpvsadm",
    version,
    override_usage = USAGE,
    before_help = SYNOPSIS,
    help_template = "{about}\n\n{before-help}{all-args}{after-help}",
    after_help = NOTES,
    disable_version_flag = true,
    // Values such as `-w -1` are read as values (and refused as such).
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(flatten)]
    pub command: Switches,
    #[command(flatten)]
    pub values: Values,
    /// Numeric output: addresses and ports, not host and service names.
    #[arg(short = 'n', long)]
    pub numeric: bool,
    /// With -L: each service's and server's requests, responses by class,
    /// bytes and failures since start or -Z.
    #[arg(long, requires = "list", conflicts_with_all = ["rate", "json"])]
    pub stats: bool,
    /// With -L: requests, bytes and failures per second over the last
    /// interval (2 s).
    #[arg(long, requires = "list", conflicts_with = "json")]
    pub rate: bool,
    /// With -L: the listing as JSON, for scripts.
    #[arg(long, requires = "list")]
    pub json: bool,
    /// tcpvsd's control socket (default: /run/tcpvsd.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// The commands: one of them, as ipvsadm takes them.
#[derive(Debug, Args)]
#[group(id = "command", multiple = false)]
pub struct Switches {
    /// Add a virtual service.
    #[arg(short = 'A', long)]
    pub add_service: bool,
    /// Edit a virtual service.
    #[arg(short = 'E', long)]
    pub edit_service: bool,
    /// Delete a virtual service.
    #[arg(short = 'D', long)]
    pub delete_service: bool,
    /// Add a real server to a service.
    #[arg(short = 'a', long)]
    pub add_server: bool,
    /// Edit a real server of a service.
    #[arg(short = 'e', long)]
    pub edit_server: bool,
    /// Delete a real server of a service.
    #[arg(short = 'd', long)]
    pub delete_server: bool,
    /// Add a content rule: requests matching -p go to -r.
    #[arg(long)]
    pub add_rule: bool,
    /// Delete a content rule.
    #[arg(long, alias = "delete-rule")]
    pub del_rule: bool,
    /// Add a server to those taking requests no rule matches.
    #[arg(long)]
    pub add_default: bool,
    /// Delete a server from those taking requests no rule matches.
    #[arg(long, alias = "delete-default")]
    pub del_default: bool,
    /// List the table (-n numeric, --stats, --rate, --json).
    #[arg(short = 'L', long)]
    pub list: bool,
    /// Delete every service (ipvsadm's -C, --clear).
    #[arg(short = 'F', long, short_alias = 'C', alias = "clear")]
    pub flush: bool,
    /// Replace the table with a TOML configuration or saved commands.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub load: Option<PathBuf>,
    /// Print the table as tcpvsadm commands.
    #[arg(short = 'S', long)]
    pub save: bool,
    /// Apply saved commands from standard input.
    #[arg(short = 'R', long)]
    pub restore: bool,
    /// Zero the counters -L --stats shows (of one service with -i).
    #[arg(short = 'Z', long)]
    pub zero: bool,
    /// Start serving a service (all with no -i).
    #[arg(long)]
    pub start: bool,
    /// Stop serving a service (all with no -i).
    #[arg(long)]
    pub stop: bool,
    /// Print the version.
    #[arg(short = 'V', long, short_alias = 'v', action = ArgAction::SetTrue)]
    pub version: bool,
}

/// The values the commands take, as text.
#[derive(Debug, Args)]
pub struct Values {
    /// The service's ident (up to 15 characters, as KTCPVS).
    #[arg(short = 'i', long, value_name = "IDENT", allow_hyphen_values = true)]
    pub ident: Option<String>,
    /// The scheduler (see below).
    #[arg(short = 's', long, value_name = "NAME", allow_hyphen_values = true)]
    pub scheduler: Option<String>,
    /// The port to listen on (on every address without -l).
    #[arg(short = 'P', long, value_name = "PORT", allow_hyphen_values = true)]
    pub port: Option<String>,
    /// The address to listen on, with or without its port.
    #[arg(
        short = 'l',
        long,
        value_name = "ADDRESS[:PORT]",
        allow_hyphen_values = true
    )]
    pub listen: Option<String>,
    /// A real server, ADDRESS:PORT or NAME:PORT.
    #[arg(
        short = 'r',
        long,
        alias = "server",
        value_name = "ADDRESS:PORT",
        allow_hyphen_values = true
    )]
    pub real_server: Option<String>,
    /// A server's weight, 0 to 65535.
    #[arg(short = 'w', long, value_name = "WEIGHT", allow_hyphen_values = true)]
    pub weight: Option<String>,
    /// A rule's regular expression on the request target.
    #[arg(short = 'p', long, value_name = "REGEX", allow_hyphen_values = true)]
    pub pattern: Option<String>,
    /// A rule's regular expression on the host the request names (Host
    /// header or absolute target), matched in any case, without the port.
    #[arg(long, value_name = "REGEX", allow_hyphen_values = true)]
    pub host: Option<String>,
    /// A rule's condition on a request header, 'NAME: REGEX'; repeatable,
    /// all must match.
    #[arg(long, value_name = "NAME: REGEX", allow_hyphen_values = true)]
    pub header: Vec<String>,
    /// The group of the pattern whose hash picks the server.
    #[arg(
        short = 'm',
        long = "match",
        value_name = "GROUP",
        allow_hyphen_values = true
    )]
    pub match_group: Option<String>,
    /// Scheduler options, name=value,...
    #[arg(long, value_name = "K=V,...", allow_hyphen_values = true)]
    pub sched_opt: Option<String>,
    /// Persistence timeout: seconds (0 off) or a duration.
    #[arg(long, value_name = "TIMEOUT", allow_hyphen_values = true)]
    pub persistent: Option<String>,
    /// The X-Forwarded-Proto added to requests: http or https.
    #[arg(long, value_name = "PROTO", allow_hyphen_values = true)]
    pub forwarded_proto: Option<String>,
    /// The service's protocol: http (default) or rtsp.
    #[arg(long, value_name = "PROTOCOL", allow_hyphen_values = true)]
    pub protocol: Option<String>,
    /// The active health check, type=tcp|http|rtsp,k=v,... or none.
    #[arg(long, value_name = "K=V,...", allow_hyphen_values = true)]
    pub check: Option<String>,
    /// The agent check, port=N,k=v,... or none.
    #[arg(long, value_name = "K=V,...", allow_hyphen_values = true)]
    pub agent: Option<String>,
    /// Passive failure counting, k=v,...
    #[arg(long, value_name = "K=V,...", allow_hyphen_values = true)]
    pub passive: Option<String>,
    /// Tries on another server after a failure, 0 to 10.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub retries: Option<String>,
    /// How long a server coming up takes to reach its weight.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub slowstart: Option<String>,
    /// The largest request body, such as 10m.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub max_body: Option<String>,
    /// What the operator allows a server: ready, drain or maint.
    #[arg(long, value_name = "STATE", allow_hyphen_values = true)]
    pub state: Option<String>,
    /// Connections a service holds, or requests a server serves, at once.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub max_conns: Option<String>,
    /// Requests a service queues for a server.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub max_queue: Option<String>,
    /// How long a queued request waits.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub queue_timeout: Option<String>,
    /// Connections one client address holds at once.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub max_conns_per_source: Option<String>,
    /// Requests per second from one client address.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub rate_per_source: Option<String>,
    /// The burst above --rate-per-source.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub burst_per_source: Option<String>,
}

impl Values {
    /// The values given, by their long name (`--max-conns`'s is
    /// `max-conns`), for the command to take those it uses.
    pub fn given(self) -> Vec<(&'static str, String)> {
        [
            ("ident", self.ident),
            ("scheduler", self.scheduler),
            ("port", self.port),
            ("listen", self.listen),
            ("real-server", self.real_server),
            ("weight", self.weight),
            ("pattern", self.pattern),
            ("host", self.host),
            ("match", self.match_group),
            ("sched-opt", self.sched_opt),
            ("persistent", self.persistent),
            ("forwarded-proto", self.forwarded_proto),
            ("protocol", self.protocol),
            ("check", self.check),
            ("agent", self.agent),
            ("passive", self.passive),
            ("retries", self.retries),
            ("slowstart", self.slowstart),
            ("max-body", self.max_body),
            ("state", self.state),
            ("max-conns", self.max_conns),
            ("max-queue", self.max_queue),
            ("queue-timeout", self.queue_timeout),
            ("max-conns-per-source", self.max_conns_per_source),
            ("rate-per-source", self.rate_per_source),
            ("burst-per-source", self.burst_per_source),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
    }
}
