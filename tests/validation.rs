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
    field: &'static str,
    value: String,
    /// Whether both front ends must accept it.
    accepted: bool,
    /// The whole configuration file with the value in place.
    toml: String,
    /// The tcpvsadm command that sets the value on the base table.
    adm: Vec<String>,
}

/// The file's pieces around a value: service keys, scheduler options,
/// server keys, extra tables after the server.
#[derive(Default)]
struct File {
    ident: Option<String>,
    listen: Option<String>,
    service: String,
    sched_opts: String,
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

/// The cases of one field: each value with whether it is valid, the file
/// that sets it and the tcpvsadm command that sets it.
fn field(
    cases: &mut Vec<Case>,
    name: &'static str,
    values: &[(&str, bool)],
    file: impl Fn(&str) -> File,
    adm: impl Fn(&str) -> Vec<String>,
) {
    cases.extend(values.iter().map(|&(value, accepted)| Case {
        field: name,
        value: value.to_string(),
        accepted,
        toml: file(value).text(),
        adm: adm(value),
    }));
}

/// A field that is a key of the service in the file, and a flag of
/// `tcpvsadm -E -i web` on the command line.
fn service_field(
    cases: &mut Vec<Case>,
    name: &'static str,
    values: &[(&str, bool)],
    key: &'static str,
    flag: &'static str,
) {
    let file = |v: &str| service_key(key, v);
    field(cases, name, values, file, |v| {
        words(&["-E", "-i", "web", flag, v])
    });
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

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let c = &mut cases;
    let idents = [
        ("other", true),
        ("a.b-c_d", true),
        ("sixteen-chars-xy", true),
        ("seventeen-chars-x", false),
        ("", false),
        ("bad/ident", false),
    ];
    let ident = |v: &str| File {
        ident: Some(v.into()),
        ..File::default()
    };
    field(c, "ident", &idents, ident, |v| {
        words(&["-A", "-i", v, "-l", "127.0.0.1:0"])
    });
    let listens = [
        ("127.0.0.1:8081", true),
        ("[::1]:8081", true),
        ("127.0.0.1", false),
        ("nonsense", false),
        ("999.1.1.1:80", false),
        ("127.0.0.1:65536", false),
    ];
    let listen = |v: &str| File {
        ident: Some("other".into()),
        listen: Some(v.into()),
        ..File::default()
    };
    field(c, "listen", &listens, listen, |v| {
        words(&["-A", "-i", "other", "-l", v])
    });
    let servers = [
        ("127.0.0.1:9002", true),
        ("[::1]:9002", true),
        ("127.0.0.1", false),
        ("999.1.1.1:80", false),
    ];
    let server = |v: &str| File {
        server_address: Some(v.into()),
        ..File::default()
    };
    field(c, "server address", &servers, server, |v| {
        words(&["-a", "-i", "web", "-r", v])
    });
    let protocols = [
        ("http", true),
        ("rtsp", true),
        ("sip", false),
        ("HTTP", false),
    ];
    service_field(c, "protocol", &protocols, "protocol", "--protocol");
    let schedulers = [
        ("http", true),
        ("phttp", true),
        ("wlc", true),
        ("rr", true),
        ("lard", true),
        ("chash", true),
        ("fastest", false),
        ("WLC", false),
        ("hhttp", false),
    ];
    service_field(c, "scheduler", &schedulers, "scheduler", "-s");
    // `scheduler options`: the algorithm, then its options (`;` between
    // them here; tcpvsadm takes them with `,`, the file as a table).
    let options = [
        ("lard low=10;high=40", true),
        (r"lard dynamic=^/\d{1,3}/;low=5", true),
        ("lard dynamic=", true),
        ("lard targets=100000000", true),
        ("lard low=0;high=1", true),
        ("lard dynamic=(", false),
        (r"lard dynamic=\p{NoSuchClass}", false),
        ("lard low=70", false),
        ("lard low=30;high=20", false),
        ("lard high=lots", false),
        ("lard high=0", false),
        ("lard low=-1", false),
        ("lard targets=0", false),
        ("lard typo=1", false),
        ("lard hold=2m", false),
        ("chash key=header:X-User", true),
        ("chash key=cookie:sid;factor=125", true),
        ("chash key=path", true),
        ("chash key=url", true),
        ("chash key=host", true),
        ("chash key=source;factor=1000", true),
        ("chash factor=5", false),
        ("chash factor=1001", false),
        ("chash key=query", false),
        ("chash key=header:", false),
        ("chash key=cookie: ", false),
        ("chash low=25", false),
        ("wlc low=25", false),
        ("rr factor=200", false),
        ("http low=25", false),
        ("lardr hold=2m", true),
        ("lardr hold=90", true),
        ("lardr hold=500ms;low=10;high=20", true),
        ("lardr hold=soon", false),
        ("lardr hold=0", false),
        ("lardr low=70", false),
        ("lardr factor=200", false),
    ];
    let options_file = |v: &str| {
        let (scheduler, options) = split(v);
        let sched_opts = options
            .split(';')
            .filter_map(|item| item.split_once('='))
            .map(|(k, v)| format!("{k} = {}\n", quote(v)))
            .collect();
        File {
            sched_opts,
            ..service_key("scheduler", scheduler)
        }
    };
    field(c, "scheduler options", &options, options_file, |v| {
        let (scheduler, options) = split(v);
        let options = options.replace(';', ",");
        words(&["-E", "-i", "web", "-s", scheduler, "--sched-opt", &options])
    });
    let weights = [
        ("0", true),
        ("3", true),
        ("65535", true),
        ("65536", false),
        ("-1", false),
    ];
    let weight = |v: &str| File {
        server: format!("weight = {v}\n"),
        ..File::default()
    };
    field(c, "weight", &weights, weight, |v| {
        words(&["-e", "-i", "web", "-r", SERVER, "-w", v])
    });
    let persistence = [
        ("300", true),
        ("300s", true),
        ("5m", true),
        ("0", true),
        ("2678400", true),
        ("2678401", false),
        ("18446744073709551615", false),
        ("soon", false),
        ("1500ms", false),
        ("-1", false),
        ("0s", false),
    ];
    service_field(c, "persistence", &persistence, "persistent", "--persistent");
    let protos = [
        ("https", true),
        ("http", true),
        ("", true),
        ("not a scheme", false),
        ("https\r\nX-Injected: 1", false),
    ];
    service_field(
        c,
        "forwarded proto",
        &protos,
        "forwarded_proto",
        "--forwarded-proto",
    );
    let patterns = [
        ("^/images/", true),
        (".*", true),
        (r"\.(jpg|png)$", true),
        ("(", false),
        ("[z-a]", false),
        ("", false),
        (r"\p{NoSuchClass}", false),
    ];
    field(
        c,
        "pattern",
        &patterns,
        |v| rule(v, ""),
        |v| words(&["--add-rule", "-i", "web", "-p", v, "-r", SERVER]),
    );
    let groups = [
        ("0", true),
        ("1", true),
        ("2", false),
        ("100", false),
        ("-1", false),
    ];
    let home = "^/home/([a-z]+)/";
    let group = |v: &str| rule(home, &format!("match_group = {v}\n"));
    field(c, "match group", &groups, group, |v| {
        words(&["--add-rule", "-i", "web", "-p", home, "-r", SERVER, "-m", v])
    });
    cases
}

#[test]
fn the_file_and_tcpvsadm_accept_and_refuse_the_same_values() {
    let base = base();
    let cases = cases();
    assert!(cases.len() >= 85, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let (file, _) = through_toml(&case.toml);
        let (adm, _) = through_tcpvsadm(&case.adm, &base);
        let what = format!("{} `{}`", case.field, case.value.escape_debug());
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
        .filter(|case| case.field == "scheduler options" && !case.accepted)
        .collect();
    assert!(refused.len() >= 20, "only {} cases", refused.len());
    for case in refused {
        let (file, _) = through_toml(&case.toml);
        let local = args::parse(case.adm.iter().cloned()).map(|_| ());
        assert_eq!(
            local.map_err(|usage| usage.0),
            file,
            "{}: refused by tcpvsadm itself, as by the file",
            case.value
        );
    }
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

/// `tcpvsadm -f FILE` with a bad scheduler option: refused by tcpvsadm
/// itself (exit 2, a usage error) at the option's line of the file, and the
/// running table is left as it was.
#[test]
fn tcpvsadm_load_refuses_a_bad_scheduler_option_at_its_line() {
    use common::daemon::{Daemon, Scratch};

    let daemon = Daemon::with_config("sched-opt-load", "log_level = \"warn\"\n");
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
