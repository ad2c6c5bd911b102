//! The TOML file and tcpvsadm take the same values: each value below goes
//! through both front ends, the configuration file as `tcpvsd --check` reads
//! it, and tcpvsadm's command line as the daemon then applies it (the verb
//! applied and the table built, as `ControlPlane` does before binding). Both
//! must accept it, or both refuse it with the same message (the file adds
//! `file:line: key:` in front).
//!
//! Host names are the one known difference: tcpvsadm resolves `name:port`
//! before sending, as ipvsadm does; the file takes addresses only.

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

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |field, value: &str, accepted, file: File, adm: Vec<String>| {
        cases.push(Case {
            field,
            value: value.to_string(),
            accepted,
            toml: file.text(),
            adm,
        })
    };
    for (value, ok) in [
        ("other", true),
        ("a.b-c_d", true),
        ("sixteen-chars-xy", true),
        ("seventeen-chars-x", false),
        ("", false),
        ("bad/ident", false),
    ] {
        let file = File {
            ident: Some(value.into()),
            ..File::default()
        };
        add(
            "ident",
            value,
            ok,
            file,
            words(&["-A", "-i", value, "-l", "127.0.0.1:0"]),
        );
    }
    for (value, ok) in [
        ("127.0.0.1:8081", true),
        ("[::1]:8081", true),
        ("127.0.0.1", false),
        ("nonsense", false),
        ("999.1.1.1:80", false),
        ("127.0.0.1:65536", false),
    ] {
        let file = File {
            ident: Some("other".into()),
            listen: Some(value.into()),
            ..File::default()
        };
        add(
            "listen",
            value,
            ok,
            file,
            words(&["-A", "-i", "other", "-l", value]),
        );
    }
    for (value, ok) in [
        ("127.0.0.1:9002", true),
        ("[::1]:9002", true),
        ("127.0.0.1", false),
        ("999.1.1.1:80", false),
    ] {
        let file = File {
            server_address: Some(value.into()),
            ..File::default()
        };
        add(
            "server address",
            value,
            ok,
            file,
            words(&["-a", "-i", "web", "-r", value]),
        );
    }
    for (value, ok) in [
        ("http", true),
        ("rtsp", true),
        ("sip", false),
        ("HTTP", false),
    ] {
        let file = File {
            service: format!("protocol = {}\n", quote(value)),
            ..File::default()
        };
        add(
            "protocol",
            value,
            ok,
            file,
            words(&["-E", "-i", "web", "--protocol", value]),
        );
    }
    for (value, ok) in [
        ("http", true),
        ("phttp", true),
        ("wlc", true),
        ("rr", true),
        ("lard", true),
        ("chash", true),
        ("fastest", false),
        ("WLC", false),
        ("hhttp", false),
    ] {
        let file = File {
            service: format!("scheduler = {}\n", quote(value)),
            ..File::default()
        };
        add(
            "scheduler",
            value,
            ok,
            file,
            words(&["-E", "-i", "web", "-s", value]),
        );
    }
    for (scheduler, options, ok) in [
        ("lard", "low=10,high=40", true),
        ("lard", "low=70", false),
        ("lard", "high=lots", false),
        ("lard", "typo=1", false),
        ("chash", "key=header:X-User", true),
        ("chash", "factor=5", false),
        ("wlc", "low=25", false),
        ("lardr", "hold=2m", true),
        ("lardr", "hold=soon", false),
    ] {
        let toml_options: String = options
            .split(',')
            .filter_map(|item| item.split_once('='))
            .map(|(k, v)| format!("{k} = {}\n", quote(v)))
            .collect();
        let file = File {
            service: format!("scheduler = {}\n", quote(scheduler)),
            sched_opts: toml_options,
            ..File::default()
        };
        add(
            "scheduler options",
            &format!("{scheduler} {options}"),
            ok,
            file,
            words(&["-E", "-i", "web", "-s", scheduler, "--sched-opt", options]),
        );
    }
    for (value, ok) in [
        ("0", true),
        ("3", true),
        ("65535", true),
        ("65536", false),
        ("-1", false),
    ] {
        let file = File {
            server: format!("weight = {value}\n"),
            ..File::default()
        };
        add(
            "weight",
            value,
            ok,
            file,
            words(&["-e", "-i", "web", "-r", SERVER, "-w", value]),
        );
    }
    for (value, ok) in [
        ("300", true),
        ("300s", true),
        ("5m", true),
        ("0", true),
        ("soon", false),
        ("1500ms", false),
        ("-1", false),
        ("0s", false),
    ] {
        let file = File {
            service: format!("persistent = {}\n", quote(value)),
            ..File::default()
        };
        add(
            "persistence",
            value,
            ok,
            file,
            words(&["-E", "-i", "web", "--persistent", value]),
        );
    }
    for (value, ok) in [
        ("https", true),
        ("http", true),
        ("", true),
        ("not a scheme", false),
        ("https\r\nX-Injected: 1", false),
    ] {
        let file = File {
            service: format!("forwarded_proto = {}\n", quote(value)),
            ..File::default()
        };
        add(
            "forwarded proto",
            value,
            ok,
            file,
            words(&["-E", "-i", "web", "--forwarded-proto", value]),
        );
    }
    for (value, ok) in [
        ("^/images/", true),
        (".*", true),
        (r"\.(jpg|png)$", true),
        ("(", false),
        ("[z-a]", false),
        ("", false),
        (r"\p{NoSuchClass}", false),
    ] {
        let file = File {
            tail: format!(
                "[[service.rule]]\npattern = {}\nservers = [{}]\n",
                quote(value),
                quote(SERVER)
            ),
            ..File::default()
        };
        add(
            "pattern",
            value,
            ok,
            file,
            words(&["--add-rule", "-i", "web", "-p", value, "-r", SERVER]),
        );
    }
    for (value, ok) in [
        ("0", true),
        ("1", true),
        ("2", false),
        ("100", false),
        ("-1", false),
    ] {
        let pattern = "^/home/([a-z]+)/";
        let file = File {
            tail: format!(
                "[[service.rule]]\npattern = {}\nservers = [{}]\nmatch_group = {value}\n",
                quote(pattern),
                quote(SERVER)
            ),
            ..File::default()
        };
        add(
            "match group",
            value,
            ok,
            file,
            words(&[
                "--add-rule",
                "-i",
                "web",
                "-p",
                pattern,
                "-r",
                SERVER,
                "-m",
                value,
            ]),
        );
    }
    cases
}

#[test]
fn the_file_and_tcpvsadm_accept_and_refuse_the_same_values() {
    let base = base();
    let mut failures = Vec::new();
    for case in cases() {
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
        let text = File {
            service: format!("scheduler = {}\n", quote(name)),
            ..File::default()
        }
        .text();
        let (_, spec) = through_toml(&text);
        assert_eq!(spec.expect(name).scheduler, SchedulerKind::Wlc, "{text}");
        let (_, table) = through_tcpvsadm(&words(&["-E", "-i", "web", "-s", name]), &base);
        let table = table.expect(name);
        assert_eq!(table.spec.services[0].scheduler, SchedulerKind::Wlc);
        assert_eq!(table.services[0].scheduler.kind(), SchedulerKind::Wlc);
    }
}
