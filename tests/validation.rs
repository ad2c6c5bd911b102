//! The TOML file and tcpvsadm take the same values: each value below goes
//! through both front ends, the configuration file as `tcpvsd --check` reads
//! it, and tcpvsadm's command line as the daemon then applies it (the verb
//! applied and the table built, as `ControlPlane` does before binding). Both
//! must accept it, or both refuse it with the same message (the file adds
//! `file:line: key:` in front). A scheduler's options, too, are refused
//! before any daemon sees them: by tcpvsadm itself when it knows the
//! scheduler, and by `tcpvsadm -f` at their line of the file.
//!
//! Host names are the one known difference: tcpvsadm resolves `name:port`
//! before sending, as ipvsadm does; the file takes addresses only.

mod common;

use std::path::Path;

use tcpvs::config::{self, ConfigError};
use tcpvs::control::plane::next_table;
use tcpvs::schedulers::SchedulerKind;
use tcpvs::table::{ServiceSpec, Table};
use tcpvsadm::args::{self, Command};

/// What a front end made of a value: accepted, or refused with a message.
type Outcome = Result<(), String>;

const SERVER: &str = "127.0.0.1:9001";

/// One value of one field, written both ways.
struct Case {
    field: Field,
    value: String,
    /// Whether both front ends must accept it.
    accepted: bool,
    /// The whole configuration file with the value in place.
    toml: String,
    /// The tcpvsadm command that sets the value on the base table.
    adm: Vec<String>,
}

/// The file's pieces around a value: service keys, scheduler options,
/// the service's other tables, server keys, extra tables after the server.
#[derive(Default)]
struct File {
    ident: Option<String>,
    listen: Option<String>,
    service: String,
    sched_opts: String,
    /// `[service.check]` and the like, with their header.
    tables: String,
    server_address: Option<String>,
    server: String,
    tail: String,
}

impl File {
    fn text(&self) -> String {
        let ident = self.ident.as_deref().unwrap_or("web");
        let listen = self.listen.as_deref().unwrap_or("127.0.0.1:0");
        let address = self.server_address.as_deref().unwrap_or(SERVER);
        let mut text = format!(
            "[[service]]\nident = {}\nlisten = {}\n{}",
            quote(ident),
            quote(listen),
            self.service
        );
        if !self.sched_opts.is_empty() {
            text += &format!("[service.sched_opts]\n{}", self.sched_opts);
        }
        text += &self.tables;
        text += &format!(
            "[[service.server]]\naddress = {}\n{}{}",
            quote(address),
            self.server,
            self.tail
        );
        text
    }
}

fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// `name=value;...` as the lines of a TOML table: a number or a boolean
/// bare, any other value a string.
fn table_lines(options: &str) -> String {
    options
        .split(';')
        .filter_map(|item| item.split_once('='))
        .map(|(k, v)| {
            let bare = v.parse::<i64>().is_ok() || v == "true" || v == "false";
            let value = if bare { v.to_string() } else { quote(v) };
            format!("{k} = {value}\n")
        })
        .collect()
}

fn words(line: &[&str]) -> Vec<String> {
    line.iter().map(|w| w.to_string()).collect()
}

/// The table tcpvsadm edits: service `web` with one real server, as the
/// file without any value describes it.
fn base() -> Table {
    let text = File::default().text();
    let config = config::parse(&text, Path::new("base.toml")).expect("the base file loads");
    Table::build(config.table, None).expect("the base table builds")
}

fn through_toml(text: &str) -> (Outcome, Option<ServiceSpec>) {
    match config::parse(text, Path::new("t.toml")) {
        Ok(config) => (Ok(()), config.table.services.into_iter().next()),
        Err(ConfigError::Invalid { message, .. }) => (Err(message), None),
        Err(other) => panic!("{text}: {other}"),
    }
}

fn through_tcpvsadm(words: &[String], base: &Table) -> (Outcome, Option<Table>) {
    let verb = match args::parse(words.iter().cloned()) {
        Ok(invocation) => match invocation.command {
            Command::Verb(verb) => verb,
            other => panic!("{words:?}: not a verb: {other:?}"),
        },
        Err(usage) => return (Err(usage.0), None),
    };
    match next_table(base, &verb) {
        Ok(table) => (Ok(()), Some(table)),
        Err(message) => (Err(message), None),
    }
}

/// The fields whose values both front ends must judge alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Ident,
    Listen,
    ServerAddress,
    Protocol,
    Scheduler,
    /// The algorithm, then its options (`;` between them here; tcpvsadm
    /// takes them with `,`, the file as a table).
    SchedulerOptions,
    Weight,
    Persistence,
    ForwardedProto,
    Pattern,
    MatchGroup,
    Retries,
    Slowstart,
    MaxBody,
    /// A table's options (`;` between them here; tcpvsadm takes them with
    /// `,`, the file as a table).
    Check,
    Agent,
    Passive,
    State,
    /// A service's connection limits, and a server's.
    MaxConns,
    MaxQueue,
    QueueTimeout,
    RatePerSource,
    BurstPerSource,
    ServerMaxConns,
}

use Field::*;

/// The rule pattern of the match group cases.
const HOME: &str = "^/home/([a-z]+)/";

/// Each field with the values both must accept, then those both must refuse.
const VALUES: &[(Field, &[&str], &[&str])] = &[
    (
        Ident,
        &["other", "a.b-c_d", "sixteen-chars-xy"],
        &["seventeen-chars-x", "", "bad/ident"],
    ),
    (
        Listen,
        &["127.0.0.1:8081", "[::1]:8081"],
        &["127.0.0.1", "nonsense", "999.1.1.1:80", "127.0.0.1:65536"],
    ),
    (
        ServerAddress,
        &["127.0.0.1:9002", "[::1]:9002"],
        &["127.0.0.1", "999.1.1.1:80", "127.0.0.1:0", "[::1]:0"],
    ),
    (Protocol, &["http", "rtsp"], &["sip", "HTTP"]),
    (
        Scheduler,
        &["http", "phttp", "wlc", "rr", "lard", "chash"],
        &["fastest", "WLC", "hhttp"],
    ),
    (
        SchedulerOptions,
        &[
            "lard low=10;high=40",
            r"lard dynamic=^/\d{1,3}/;low=5",
            "lard dynamic=",
            "lard targets=100000000",
            "lard low=0;high=1",
            "chash key=header:X-User",
            "chash key=cookie:sid;factor=125",
            "chash key=path",
            "chash key=url",
            "chash key=host",
            "chash key=source;factor=1000",
            "lardr hold=2m",
            "lardr hold=90",
            "lardr hold=500ms;low=10;high=20",
        ],
        &[
            "lard dynamic=(",
            r"lard dynamic=\p{NoSuchClass}",
            "lard low=70",
            "lard low=30;high=20",
            "lard high=lots",
            "lard high=0",
            "lard low=-1",
            "lard targets=0",
            "lard typo=1",
            "lard hold=2m",
            "chash factor=5",
            "chash factor=1001",
            "chash key=query",
            "chash key=header:",
            "chash key=cookie: ",
            "chash low=25",
            "wlc low=25",
            "rr factor=200",
            "http low=25",
            "lardr hold=soon",
            "lardr hold=0",
            "lardr low=70",
            "lardr factor=200",
        ],
    ),
    (Weight, &["0", "3", "65535"], &["65536", "-1"]),
    (
        Persistence,
        &["300", "300s", "5m", "0", "2678400"],
        &[
            "2678401",
            "18446744073709551615",
            "soon",
            "1500ms",
            "-1",
            "0s",
        ],
    ),
    (
        ForwardedProto,
        &["https", "http", ""],
        &["not a scheme", "https\r\nX-Injected: 1"],
    ),
    (
        Pattern,
        &["^/images/", ".*", r"\.(jpg|png)$"],
        &["(", "[z-a]", "", r"\p{NoSuchClass}"],
    ),
    (MatchGroup, &["0", "1"], &["2", "100", "-1"]),
    (Retries, &["0", "2", "10"], &["11", "-1"]),
    (
        Slowstart,
        &["0s", "500ms", "30s", "1h"],
        &["61m", "0", "soon", "-1s"],
    ),
    (
        MaxBody,
        &["0", "1048576", "512k", "10m", "1G"],
        &["-1", "1.5m", "lots", "1t", "9999999999g"],
    ),
    (
        Check,
        &[
            "type=tcp",
            "type=http",
            "type=http;path=/health?x=1;status=200-299;body=OK, fine;method=HEAD;host=www.example.com",
            "type=http;status=204",
            "type=tcp;interval=100ms;timeout=10ms;rise=1;fall=100",
            "type=http;interval=1h;timeout=1m;rise=100;fall=1",
        ],
        &[
            "type=rtsp",
            "type=icmp",
            "interval=2s",
            "type=tcp;interval=99ms;timeout=10ms",
            "type=tcp;interval=61m",
            "type=tcp;timeout=9ms",
            "type=tcp;timeout=2s",
            "type=tcp;interval=500ms",
            "type=tcp;rise=0",
            "type=tcp;fall=101",
            "type=tcp;path=/x",
            "type=http;path=health",
            "type=http;path=/a b",
            "type=http;method=G E T",
            "type=http;status=600",
            "type=http;status=300-200",
            "type=http;host=a b",
            "type=http;body=",
            "type=http;body=a\tb",
        ],
    ),
    (
        Agent,
        &[
            "port=9999",
            "port=1;interval=100ms;timeout=10ms",
            "port=65535;interval=1h;timeout=1m",
        ],
        &[
            "port=0",
            "port=65536",
            "port=x",
            "interval=2s",
            "port=1;interval=1s;timeout=1s",
            "port=1;interval=99ms;timeout=10ms",
            "port=1;fall=1",
        ],
    ),
    (
        Passive,
        &[
            "max_fails=0",
            "max_fails=1000;fail_timeout=1s",
            "fail_timeout=1h;on_5xx=yes",
            "on_5xx=false",
        ],
        &[
            "max_fails=1001",
            "max_fails=-1",
            "fail_timeout=999ms",
            "fail_timeout=61m",
            "on_5xx=maybe",
            "typo=1",
        ],
    ),
    (State, &["ready", "drain", "maint"], &["up", "DRAIN", ""]),
    (
        MaxConns,
        &["0", "1", "10000000"],
        &["-1", "10000001", "x", "1.5"],
    ),
    (MaxQueue, &["0", "100"], &["-1", "lots"]),
    (
        QueueTimeout,
        &["0", "0s", "250ms", "1h"],
        &["61m", "soon", "-1s"],
    ),
    (RatePerSource, &["0", "20"], &["-5", "10000001"]),
    // Without a rate, a burst means nothing.
    (BurstPerSource, &["0"], &["10", "x"]),
    (ServerMaxConns, &["0", "5"], &["-1", "10000001"]),
];

/// The fields tcpvsadm reads entirely itself, so it refuses their bad
/// values before any daemon sees them (a check's fit to the protocol
/// aside: the service's protocol is tcpvsd's to know).
const READ_BY_TCPVSADM: &[Field] = &[Retries, Slowstart, MaxBody, Check, Agent, Passive, State];

impl Field {
    /// The configuration file that sets the value.
    fn file(self, value: &str) -> File {
        let v = Some(value.to_string());
        match self {
            Ident => File {
                ident: v,
                ..File::default()
            },
            Listen => File {
                ident: Some("other".into()),
                listen: v,
                ..File::default()
            },
            ServerAddress => File {
                server_address: v,
                ..File::default()
            },
            Protocol => service_key("protocol", value),
            Scheduler => service_key("scheduler", value),
            SchedulerOptions => {
                let (scheduler, options) = split(value);
                File {
                    sched_opts: table_lines(options),
                    ..service_key("scheduler", scheduler)
                }
            }
            Weight => File {
                server: format!("weight = {value}\n"),
                ..File::default()
            },
            Persistence => service_key("persistent", value),
            ForwardedProto => service_key("forwarded_proto", value),
            Pattern => rule(value, ""),
            MatchGroup => rule(HOME, &format!("match_group = {value}\n")),
            Retries => File {
                service: format!("retries = {value}\n"),
                ..File::default()
            },
            Slowstart => service_key("slowstart", value),
            MaxBody => service_key("max_body", value),
            Check | Agent | Passive => File {
                tables: format!("[service.{}]\n{}", self.option(), table_lines(value)),
                ..File::default()
            },
            State => File {
                server: format!("state = {}\n", quote(value)),
                ..File::default()
            },
            MaxConns | MaxQueue | QueueTimeout | RatePerSource | BurstPerSource => File {
                service: table_lines(&format!("{}={value}", self.limit())),
                ..File::default()
            },
            ServerMaxConns => File {
                server: format!("max_conns = {value}\n"),
                ..File::default()
            },
        }
    }

    /// The name of a service limit in the file (tcpvsadm: `-` for `_`).
    fn limit(self) -> &'static str {
        match self {
            MaxConns => "max_conns",
            MaxQueue => "max_queue",
            QueueTimeout => "queue_timeout",
            RatePerSource => "rate_per_source",
            BurstPerSource => "burst_per_source",
            _ => unreachable!("{self:?} is not a service limit"),
        }
    }

    /// The name of the field's table in the file and option on tcpvsadm.
    fn option(self) -> &'static str {
        match self {
            Check => "check",
            Agent => "agent",
            Passive => "passive",
            _ => unreachable!("{self:?} is not a table"),
        }
    }

    /// The tcpvsadm command that sets the value on the base table.
    fn adm(self, value: &str) -> Vec<String> {
        let edit = |flag: &str| words(&["-E", "-i", "web", flag, value]);
        let add_rule = ["--add-rule", "-i", "web", "-r", SERVER, "-p"];
        match self {
            Ident => words(&["-A", "-i", value, "-l", "127.0.0.1:0"]),
            Listen => words(&["-A", "-i", "other", "-l", value]),
            ServerAddress => words(&["-a", "-i", "web", "-r", value]),
            Protocol => edit("--protocol"),
            Scheduler => edit("-s"),
            SchedulerOptions => {
                let (scheduler, options) = split(value);
                let options = options.replace(';', ",");
                words(&["-E", "-i", "web", "-s", scheduler, "--sched-opt", &options])
            }
            Weight => words(&["-e", "-i", "web", "-r", SERVER, "-w", value]),
            Persistence => edit("--persistent"),
            ForwardedProto => edit("--forwarded-proto"),
            Pattern => words(&[&add_rule[..], &[value]].concat()),
            MatchGroup => words(&[&add_rule[..], &[HOME, "-m", value]].concat()),
            Retries => edit("--retries"),
            Slowstart => edit("--slowstart"),
            MaxBody => edit("--max-body"),
            Check | Agent | Passive => {
                let option = format!("--{}", self.option());
                words(&["-E", "-i", "web", &option, &value.replace(';', ",")])
            }
            State => words(&["-e", "-i", "web", "-r", SERVER, "--state", value]),
            MaxConns | MaxQueue | QueueTimeout | RatePerSource | BurstPerSource => {
                edit(&format!("--{}", self.limit().replace('_', "-")))
            }
            ServerMaxConns => words(&["-e", "-i", "web", "-r", SERVER, "--max-conns", value]),
        }
    }
}

fn service_key(key: &str, value: &str) -> File {
    File {
        service: format!("{key} = {}\n", quote(value)),
        ..File::default()
    }
}

fn rule(pattern: &str, more: &str) -> File {
    let tail = format!(
        "[[service.rule]]\npattern = {}\nservers = [{}]\n{more}",
        quote(pattern),
        quote(SERVER)
    );
    File {
        tail,
        ..File::default()
    }
}

/// `lard low=10` as the algorithm and its options.
fn split(value: &str) -> (&str, &str) {
    value.split_once(' ').unwrap_or((value, ""))
}

/// Every value of every field, written both ways.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for &(field, accepted, refused) in VALUES {
        let judged = accepted.iter().map(|v| (v, true));
        for (value, accepted) in judged.chain(refused.iter().map(|v| (v, false))) {
            cases.push(Case {
                field,
                value: value.to_string(),
                accepted,
                toml: field.file(value).text(),
                adm: field.adm(value),
            });
        }
    }
    cases
}

#[test]
fn the_file_and_tcpvsadm_accept_and_refuse_the_same_values() {
    let base = base();
    let cases = cases();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let (file, _) = through_toml(&case.toml);
        let (adm, _) = through_tcpvsadm(&case.adm, &base);
        let what = format!("{:?} `{}`", case.field, case.value.escape_debug());
        if file != adm {
            failures.push(format!("{what}: file {file:?}, tcpvsadm {adm:?}"));
        } else if file.is_ok() != case.accepted {
            failures.push(format!("{what}: both gave {file:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn ktcpvs_http_scheduler_is_wlc_both_ways() {
    let base = base();
    for name in ["http", "phttp"] {
        let text = service_key("scheduler", name).text();
        let (_, spec) = through_toml(&text);
        assert_eq!(spec.expect(name).scheduler, SchedulerKind::Wlc, "{text}");
        let (_, table) = through_tcpvsadm(&words(&["-E", "-i", "web", "-s", name]), &base);
        let table = table.expect(name);
        assert_eq!(table.spec.services[0].scheduler, SchedulerKind::Wlc);
        assert_eq!(table.services[0].scheduler.kind(), SchedulerKind::Wlc);
    }
}

/// tcpvsadm refuses a scheduler's bad options itself, before any daemon
/// sees them, with the file's message, whenever it knows the scheduler.
#[test]
fn tcpvsadm_refuses_bad_scheduler_options_itself() {
    let refused: Vec<Case> = cases()
        .into_iter()
        .filter(|case| case.field == SchedulerOptions && !case.accepted)
        .collect();
    assert!(refused.len() >= 20, "only {} cases", refused.len());
    refused_by_tcpvsadm_as_by_the_file(refused);
    // `-A` without `-s`: the default scheduler's options.
    let add = words(&["-A", "-i", "new", "-l", "127.0.0.1:0"]);
    let with = |options: &str| {
        let mut line = add.clone();
        line.extend(words(&["--sched-opt", options]));
        args::parse(line).map(|_| ()).map_err(|usage| usage.0)
    };
    assert_eq!(
        with("low=25"),
        Err("scheduler wlc of service `new`: unknown option `low` (wlc takes none)".into())
    );
}

/// tcpvsadm refuses the bad values of the health options itself, with the
/// file's message.
#[test]
fn tcpvsadm_refuses_bad_health_values_itself() {
    let refused: Vec<Case> = cases()
        .into_iter()
        .filter(|case| READ_BY_TCPVSADM.contains(&case.field) && !case.accepted)
        .filter(|case| case.value != "type=rtsp")
        .collect();
    assert!(refused.len() >= 35, "only {} cases", refused.len());
    refused_by_tcpvsadm_as_by_the_file(refused);
}

/// Each case is refused by tcpvsadm's own parsing (no daemon), with the
/// file's message.
fn refused_by_tcpvsadm_as_by_the_file(refused: Vec<Case>) {
    for case in refused {
        let (file, _) = through_toml(&case.toml);
        let local = args::parse(case.adm.iter().cloned()).map(|_| ());
        assert_eq!(
            local.map_err(|usage| usage.0),
            file,
            "{:?} {}: refused by tcpvsadm itself, as by the file",
            case.field,
            case.value
        );
    }
}

/// `tcpvsadm -f FILE` with a bad scheduler option: refused by tcpvsadm
/// itself (exit 2, a usage error) at the option's line of the file, and the
/// running table is left as it was.
#[test]
fn tcpvsadm_load_refuses_a_bad_scheduler_option_at_its_line() {
    use common::daemon::{Daemon, Scratch};

    let daemon = Daemon::with_config(
        "sched-opt-load",
        "log_level = \"warn\"\nallow_empty = true\n",
    );
    daemon.ok("-A -i old -l 127.0.0.1:0");
    let before = daemon.ok("-S");
    let scratch = Scratch::new("sched-opt-file");
    let good = File {
        service: "scheduler = \"lard\"\n".into(),
        sched_opts: "high = 40\nlow = 10\n".into(),
        ..File::default()
    };
    let bad = File {
        service: good.service.clone(),
        sched_opts: "high = 40\nlow = 70\n".into(),
        ..File::default()
    };
    let path = scratch.write("bad.toml", &bad.text());
    let output = daemon.adm(&format!("-f {}", path.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // [[service]], ident, listen, scheduler, [service.sched_opts], high, low.
    let expected = format!(
        "tcpvsadm: {}:6: service[0].sched_opts.high: scheduler lard of service `web`: \
         low=70 must be below high=40",
        path.display()
    );
    assert_eq!(stderr.trim(), expected, "{}", bad.text());
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(daemon.ok("-S"), before, "the table changed");
    // The same file with a good option loads.
    let path = scratch.write("good.toml", &good.text());
    daemon.ok(&format!("-f {}", path.display()));
    let saved = daemon.ok("-S");
    assert!(
        saved.contains("-s lard --sched-opt high=40,low=10"),
        "{saved}"
    );
}
