//! Real servers given by host name, looked up off the workers: at load and
//! reload (on the thread applying the file) through [`Logged`], and every
//! `resolve_interval` by a thread of their own, which moves a server whose
//! name now gives another address through the same edit as `tcpvsadm`'s
//! (`Verb::Readdress`): it keeps its weight, options and counters, and
//! requests in flight finish on the old address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use tcpvs_command::resolve::{self, Resolve};
use tcpvs_command::validate::{self, ServerText};
use tcpvs_command::Verb;

use crate::control::plane::ControlPlane;
use crate::table::{Table, TableSpec};

/// The C library's resolver, saying what it found: the addresses a name
/// has besides the one taken at debug, and (for a load or a reload, where
/// a failure is a one-off) a failure as a warning.
#[derive(Debug, Clone, Copy)]
pub struct Logged {
    warn_on_failure: bool,
}

impl Logged {
    /// For a file loaded or a verb: a name that fails is said at once.
    pub const ONCE: Logged = Logged {
        warn_on_failure: true,
    };
    /// For the periodic lookups, which warn once per change themselves.
    const PERIODIC: Logged = Logged {
        warn_on_failure: false,
    };
}

impl Resolve for Logged {
    fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let found = resolve::System.lookup(name, port);
        match &found {
            Ok(addrs) if addrs.len() > 1 => {
                let taken = resolve::preferred(addrs).map(|a| a.to_string());
                tracing::debug!(name, ?addrs, taken, "server name has several addresses");
            }
            Err(reason) if self.warn_on_failure => {
                tracing::warn!(name, port, "server name does not resolve: {reason}");
            }
            _ => {}
        }
        found
    }
}

/// What the last lookup of each named server gave, so that a name failing
/// interval after interval is warned about once.
#[derive(Debug, Default)]
pub struct Outcomes(HashMap<(String, String), Outcome>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Resolved,
    Failed(String),
}

impl Outcomes {
    /// Records `now` for server `host` of service `ident`; whether it
    /// differs from the last.
    fn changed(&mut self, ident: &str, host: &str, now: Outcome) -> bool {
        let key = (ident.to_string(), host.to_ascii_lowercase());
        self.0.insert(key, now.clone()) != Some(now)
    }
}

/// Looks up every server of `spec` given by name and gives the edits that
/// move those whose name now has another address. A name that does not
/// resolve keeps its last address, with one warning per change of outcome.
pub fn moves(spec: &TableSpec, resolver: &dyn Resolve, outcomes: &mut Outcomes) -> Vec<Verb> {
    let mut moves = Vec::new();
    for service in &spec.services {
        let ident = service.ident.as_str();
        for server in &service.servers {
            let Some(host) = &server.host else { continue };
            // Read from the spec: it parsed, a name and a port.
            let Ok(ServerText::Name { name, port }) = validate::server_text(host) else {
                continue;
            };
            let addr = match resolve::resolve(resolver, host, &name, port) {
                Ok(addr) => addr,
                Err(error) => {
                    let outcome = Outcome::Failed(error.to_string());
                    if outcomes.changed(ident, host, outcome) {
                        tracing::warn!(
                            service = ident,
                            server = %server.addr,
                            "{error}: keeping its last address"
                        );
                    }
                    continue;
                }
            };
            if outcomes.changed(ident, host, Outcome::Resolved) {
                tracing::debug!(service = ident, server = %addr, host, "server name resolves");
            }
            if addr != server.addr {
                moves.push(Verb::Readdress {
                    ident: ident.to_string(),
                    server: host.clone(),
                    address: addr.to_string(),
                });
            }
        }
    }
    moves
}

/// How long the thread waits when lookups are off, before reading the
/// interval again (a reload may turn them on).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Starts the thread that looks server names up every `resolve_interval`
/// of the running table (none while it is zero) and applies the moves
/// through `plane`. It holds the plane weakly and ends with it: the daemon's
/// stop drops the plane and with it the workers, whose drop ends their
/// runtimes in order (an extra owner here would leave that to the exit).
pub fn start(
    table: Arc<ArcSwap<Table>>,
    plane: &Arc<ControlPlane>,
) -> std::io::Result<JoinHandle<()>> {
    let plane: Weak<ControlPlane> = Arc::downgrade(plane);
    std::thread::Builder::new()
        .name("tcpvs-resolver".into())
        .spawn(move || {
            let mut outcomes = Outcomes::default();
            while plane.strong_count() > 0 {
                let interval = table.load().settings().resolve_interval;
                if interval.is_zero() {
                    std::thread::sleep(IDLE_POLL);
                    continue;
                }
                std::thread::sleep(interval);
                let spec = table.load().spec.clone();
                for verb in moves(&spec, &Logged::PERIODIC, &mut outcomes) {
                    let Some(plane) = plane.upgrade() else { return };
                    match plane.handle(&verb) {
                        Ok(_) => tracing::info!("{}", verb.summary()),
                        // The table changed meanwhile, or the name now
                        // gives another server's address.
                        Err(e) => tracing::warn!("{}: not applied: {e}", verb.summary()),
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::plane::next_table;
    use crate::server::ActiveGuard;
    use crate::table::{RuleSpec, ServerAddr, ServerSpec, ServiceSpec, Weight};
    use std::sync::Mutex;

    /// A resolver whose answers a test changes.
    #[derive(Default)]
    struct Changing(Mutex<HashMap<String, Result<Vec<SocketAddr>, String>>>);

    impl Changing {
        fn set(&self, name: &str, answer: Result<&[&str], &str>) {
            let answer = answer
                .map(|ips| {
                    let ip = |ip: &&str| SocketAddr::new(ip.parse().unwrap(), 80);
                    ips.iter().map(ip).collect()
                })
                .map_err(str::to_string);
            self.0.lock().unwrap().insert(name.to_string(), answer);
        }
    }

    impl Resolve for Changing {
        fn lookup(&self, name: &str, _port: u16) -> Result<Vec<SocketAddr>, String> {
            let answers = self.0.lock().unwrap();
            answers.get(name).cloned().unwrap_or(Err("unknown".into()))
        }
    }

    fn addr(text: &str) -> ServerAddr {
        text.parse().map(ServerAddr).unwrap()
    }

    /// `app.example:80` at 10.0.0.1 (weight 3, a rule and the default set
    /// name it) beside 10.0.0.9:80.
    fn spec() -> TableSpec {
        let named = ServerSpec::new(addr("10.0.0.1:80"), Weight(3)).named("app.example:80");
        let plain = ServerSpec::new(addr("10.0.0.9:80"), Weight(1));
        TableSpec {
            services: vec![ServiceSpec {
                servers: vec![named, plain],
                rules: vec![RuleSpec::on_target("^/app/", vec![addr("10.0.0.1:80")])],
                default: Some(vec![addr("10.0.0.1:80")]),
                ..ServiceSpec::new("web".parse().unwrap(), "127.0.0.1:0".parse().unwrap())
            }],
            ..TableSpec::default()
        }
    }

    /// A new address moves the server in the running table: same weight,
    /// rules and default set follow, and its live counters (a request in
    /// flight) carry over.
    #[test]
    fn a_new_address_moves_the_server_and_keeps_its_state() {
        let names = Changing::default();
        names.set("app.example", Ok(&["10.0.0.1"]));
        let mut outcomes = Outcomes::default();
        let first = Table::build(spec(), None).unwrap();
        assert!(moves(&first.spec, &names, &mut outcomes).is_empty());
        let _in_flight = ActiveGuard::new(first.services[0].servers[0].state.clone());

        names.set("app.example", Ok(&["::1", "10.0.0.2", "10.0.0.3"]));
        let verbs = moves(&first.spec, &names, &mut outcomes);
        assert_eq!(
            verbs,
            [Verb::Readdress {
                ident: "web".into(),
                server: "app.example:80".into(),
                address: "10.0.0.2:80".into(),
            }]
        );
        let second = next_table(&first, &verbs[0]).unwrap();
        let web = &second.services[0];
        let moved = &web.servers[0];
        assert_eq!((moved.addr, moved.weight), (addr("10.0.0.2:80"), Weight(3)));
        assert_eq!(moved.state.active(), 1, "its counters carried over");
        assert_eq!(web.candidates("/app/x")[0].addr, addr("10.0.0.2:80"));
        assert_eq!(web.default_set[0].addr, addr("10.0.0.2:80"));
        assert_eq!(web.servers[1].addr, addr("10.0.0.9:80"));
        assert_eq!(
            second.spec.services[0].servers[0].host.as_deref(),
            Some("app.example:80")
        );
        assert!(moves(&second.spec, &names, &mut outcomes).is_empty());
    }

    /// A failed lookup keeps the last address and asks no edit.
    #[test]
    fn a_failed_lookup_keeps_the_last_address() {
        let names = Changing::default();
        names.set("app.example", Err("temporary failure in name resolution"));
        let mut outcomes = Outcomes::default();
        let table = Table::build(spec(), None).unwrap();
        assert!(moves(&table.spec, &names, &mut outcomes).is_empty());
        let key = ("web".to_string(), "app.example:80".to_string());
        assert!(matches!(outcomes.0.get(&key), Some(Outcome::Failed(_))));
        assert!(
            !outcomes.changed(
                "web",
                "app.example:80",
                Outcome::Failed(
                    "cannot resolve server `app.example:80`: temporary failure in name resolution"
                        .into()
                )
            ),
            "the same failure again is no change (no second warning)"
        );
    }
}
