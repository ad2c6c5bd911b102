//! A verb in one short line for the daemon's log: what it changes (the
//! service, server or rule it names and the options it sets), e.g.
//! `add-server web 10.0.0.1:80 weight=2`. Every word comes from a peer and
//! may be refused afterwards, so each is bounded in length and quoted when it
//! holds a space or a control character: a summary is always one log line.

use std::fmt::Write;

use crate::verb::{RuleArgs, ServerArgs, ServiceArgs, Verb};

/// The verbs of a batch named in its summary; the rest are counted.
const BATCH_SHOWN: usize = 3;
/// The longest word a summary shows as it is; a longer one is cut.
const MAX_WORD: usize = 64;

impl Verb {
    /// One line saying what the verb does, for the log.
    pub fn summary(&self) -> String {
        let mut line = self.name().to_string();
        match self {
            Verb::AddService(args) | Verb::EditService(args) => service(&mut line, args),
            Verb::AddServer(args) | Verb::EditServer(args) => server(&mut line, args),
            Verb::AddRule(args) | Verb::DelRule(args) => rule(&mut line, args),
            Verb::DelService { ident } => words(&mut line, [ident]),
            Verb::DelServer { ident, server }
            | Verb::AddDefault { ident, server }
            | Verb::DelDefault { ident, server } => words(&mut line, [ident, server]),
            Verb::Start { ident } | Verb::Stop { ident } | Verb::Zero { ident } => match ident {
                Some(ident) => words(&mut line, [ident]),
                None => line.push_str(" (all services)"),
            },
            Verb::List { ident } => words(&mut line, ident),
            Verb::Readdress {
                ident,
                server,
                address,
            } => {
                words(&mut line, [ident, server]);
                line.push_str(" ->");
                words(&mut line, [address]);
            }
            Verb::Flush | Verb::HandOver | Verb::Retire => {}
            Verb::Batch { verbs } => batch(&mut line, verbs),
            Verb::Load { source, text } => {
                words(&mut line, [source]);
                line.push_str(&format!(" ({} bytes)", text.len()));
            }
        }
        line
    }
}

fn service(line: &mut String, args: &ServiceArgs) {
    words(line, [&args.ident]);
    let sched_opts = args.sched_opts.as_ref().map(|options| {
        let pairs: Vec<String> = options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(",")
    });
    let numbers = [
        ("persistent", args.persistent),
        ("retries", args.retries.map(u64::from)),
    ];
    let texts = [
        ("listen", args.listen.as_ref()),
        ("scheduler", args.scheduler.as_ref()),
        ("sched_opts", sched_opts.as_ref()),
        ("protocol", args.protocol.as_ref()),
        ("forwarded_proto", args.forwarded_proto.as_ref()),
        ("check", args.check.as_ref()),
        ("agent", args.agent.as_ref()),
        ("passive", args.passive.as_ref()),
        ("slowstart", args.slowstart.as_ref()),
        ("max_body", args.max_body.as_ref()),
    ];
    for (key, value) in texts {
        option(line, key, value);
    }
    for (key, value) in numbers {
        option(line, key, value);
    }
    for (key, value) in args.limits.iter().flatten() {
        option(line, key, Some(value));
    }
}

fn server(line: &mut String, args: &ServerArgs) {
    words(line, [&args.ident, &args.server]);
    option(line, "weight", args.weight);
    option(line, "state", args.state);
    option(line, "max_conns", args.max_conns);
}

fn rule(line: &mut String, args: &RuleArgs) {
    words(line, [&args.ident, &args.pattern]);
    line.push_str(" ->");
    words(line, [&args.server]);
    option(line, "match_group", args.match_group);
    option(line, "host", args.host.as_ref());
    for header in &args.headers {
        option(line, "header", Some(header));
    }
}

fn batch(line: &mut String, verbs: &[Verb]) {
    let _ = write!(line, " of {}:", verbs.len());
    let shown: Vec<String> = verbs.iter().take(BATCH_SHOWN).map(Verb::summary).collect();
    let _ = write!(line, " {}", shown.join("; "));
    if verbs.len() > BATCH_SHOWN {
        let _ = write!(line, "; and {} more", verbs.len() - BATCH_SHOWN);
    }
}

/// Appends ` key=value` when the option is given.
fn option(line: &mut String, key: &str, value: Option<impl ToString>) {
    if let Some(value) = value {
        let _ = write!(line, " {key}={}", word(&value.to_string()));
    }
}

fn words<'a>(line: &mut String, words: impl IntoIterator<Item = &'a String>) {
    for text in words {
        line.push(' ');
        line.push_str(&word(text));
    }
}

/// `text` as one word of a log line: cut to `MAX_WORD` characters, and
/// quoted (with Rust's escapes) when it is empty or holds a space, a quote
/// or a control character.
fn word(text: &str) -> String {
    let mut shown: String = text.chars().take(MAX_WORD).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    let plain = !shown.is_empty()
        && !shown
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"');
    if plain {
        shown
    } else {
        format!("{shown:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::AdminState;

    fn server_args(weight: Option<u32>, state: Option<AdminState>) -> ServerArgs {
        ServerArgs {
            ident: "web".into(),
            server: "10.0.0.1:80".into(),
            weight,
            state,
            max_conns: None,
        }
    }

    #[test]
    fn names_the_service_server_or_rule_and_the_options_given() {
        let add = Verb::AddService(ServiceArgs {
            ident: "web".into(),
            listen: Some("127.0.0.1:0".into()),
            scheduler: Some("lard".into()),
            sched_opts: Some([("low".into(), "25".into())].into()),
            retries: Some(2),
            ..Default::default()
        });
        let cases = [
            (
                add,
                "add-service web listen=127.0.0.1:0 scheduler=lard sched_opts=low=25 retries=2",
            ),
            (
                Verb::EditServer(server_args(Some(0), Some(AdminState::Drain))),
                "edit-server web 10.0.0.1:80 weight=0 state=drain",
            ),
            (
                Verb::AddRule(RuleArgs {
                    ident: "web".into(),
                    pattern: "^/images/".into(),
                    server: "10.0.0.2:80".into(),
                    match_group: Some(1),
                    host: Some("^img\\.".into()),
                    headers: vec!["x-tenant: ^a".into()],
                }),
                "add-rule web ^/images/ -> 10.0.0.2:80 match_group=1 host=^img\\. \
                 header=\"x-tenant: ^a\"",
            ),
            (
                Verb::DelDefault {
                    ident: "web".into(),
                    server: "10.0.0.1:80".into(),
                },
                "del-default web 10.0.0.1:80",
            ),
            (Verb::Stop { ident: None }, "stop (all services)"),
            (
                Verb::Start {
                    ident: Some("web".into()),
                },
                "start web",
            ),
            (Verb::Flush, "flush"),
            (Verb::List { ident: None }, "list"),
        ];
        for (verb, expected) in cases {
            assert_eq!(verb.summary(), expected);
        }
    }

    #[test]
    fn a_batch_gives_its_count_and_its_first_verbs() {
        let verbs: Vec<Verb> = (1..=5)
            .map(|weight| Verb::EditServer(server_args(Some(weight), None)))
            .collect();
        let summary = Verb::Batch { verbs }.summary();
        assert_eq!(
            summary,
            "batch of 5: edit-server web 10.0.0.1:80 weight=1; \
             edit-server web 10.0.0.1:80 weight=2; \
             edit-server web 10.0.0.1:80 weight=3; and 2 more"
        );
        let short = Verb::Batch {
            verbs: vec![Verb::Flush],
        };
        assert_eq!(short.summary(), "batch of 1: flush");
    }

    #[test]
    fn words_from_a_peer_stay_on_one_short_line() {
        let verb = Verb::DelService {
            ident: "web\nERROR forged line".into(),
        };
        assert_eq!(verb.summary(), r#"del-service "web\nERROR forged line""#);
        let long = Verb::DelService {
            ident: "x".repeat(10_000),
        };
        let summary = long.summary();
        assert!(summary.len() < 100, "{summary}");
        assert!(summary.ends_with("x…"), "{summary}");
        let empty = Verb::DelService { ident: "".into() };
        assert_eq!(empty.summary(), r#"del-service """#);
    }
}
