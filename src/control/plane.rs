//! Where a verb becomes a new table. Edits are serialized; each builds a new
//! immutable table from the current one (regexes compiled here, on the
//! control thread, never on a worker), binds the listeners it needs, saves the
//! state file, and only then swaps the table in. Any failure leaves the
//! running table exactly as it was.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use tcpvs_command::view::RateView;
use tcpvs_command::{ServiceView, TableView, Verb};

use super::reload::Reload;
use crate::health::verdict;
use crate::state_file;
use crate::table::{ServerAddr, Service, Table, TableSpec};
use crate::traffic::{self, Snapshot, Traffic};
use crate::worker::Workers;

/// The running daemon as the control socket sees it.
pub struct ControlPlane {
    table: Arc<ArcSwap<Table>>,
    workers: Arc<Workers>,
    state_file: Option<PathBuf>,
    edits: Mutex<()>,
    /// What a loaded file changes beyond the table (`None`: nothing).
    reload: Option<Reload>,
    /// Tells the daemon a new tcpvsd took over (`None`: it cannot be).
    retire: Option<Box<dyn Fn() + Send + Sync>>,
    /// What `-L --stats` counts from (`-Z`) and the rates of `-L --rate`.
    traffic: Arc<Traffic>,
}

impl ControlPlane {
    pub fn new(
        table: Arc<ArcSwap<Table>>,
        workers: Arc<Workers>,
        state_file: Option<PathBuf>,
        traffic: Arc<Traffic>,
    ) -> Self {
        Self {
            table,
            workers,
            state_file,
            edits: Mutex::new(()),
            reload: None,
            retire: None,
            traffic,
        }
    }

    /// A new tcpvsd may take over: `retire` tells the daemon to drain and exit.
    pub fn with_retire(self, retire: Box<dyn Fn() + Send + Sync>) -> Self {
        Self {
            retire: Some(retire),
            ..self
        }
    }

    /// The listening sockets, for a new tcpvsd (`--upgrade`).
    pub fn hand_over(&self) -> std::io::Result<Vec<crate::worker::Inherited>> {
        self.workers.hand_over()
    }

    /// A new tcpvsd serves the sockets handed over: this one retires.
    pub fn retire(&self) -> Result<(), String> {
        let retire = self
            .retire
            .as_ref()
            .ok_or("this tcpvsd cannot be replaced")?;
        // Retiring before a new tcpvsd holds the sockets would stop the
        // service, with nothing to take it over.
        if !self.workers.handed_over() {
            return Err(
                "retire: no new tcpvsd took the listening sockets (hand-over first)".into(),
            );
        }
        retire();
        Ok(())
    }

    /// Loaded files (SIGHUP, `tcpvsadm -f`) also change the log level and
    /// name what needs a restart.
    pub fn with_reload(self, reload: Reload) -> Self {
        Self {
            reload: Some(reload),
            ..self
        }
    }

    /// Carries out one verb: `Ok(Some(view))` for a listing.
    pub fn handle(&self, verb: &Verb) -> Result<Option<TableView>, String> {
        match verb {
            Verb::List { ident } => self.view(ident.as_deref()).map(Some),
            Verb::Zero { ident } => self.zero(ident.as_deref()).map(|()| None),
            Verb::HandOver | Verb::Retire => {
                Err(format!("{} is for a new tcpvsd (--upgrade)", verb.name()))
            }
            _ => self.edit(verb).map(|()| None),
        }
    }

    fn edit(&self, verb: &Verb) -> Result<(), String> {
        let _one_at_a_time = self.edits.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.table.load_full();
        let next = match (verb, &self.reload) {
            // A file loaded does not undo tcpvsd's flags.
            (Verb::Load { .. }, Some(reload)) => {
                next_table_with(&current, verb, |spec| reload.pin(spec))?
            }
            _ => next_table(&current, verb)?,
        };
        let pending = self.workers.prepare(&next).map_err(|e| e.to_string())?;
        if let Some(path) = &self.state_file {
            // `pending` is dropped on error, closing what it bound.
            state_file::save(path, &next.spec).map_err(|e| {
                format!(
                    "the edit was not applied: cannot save {}: {e}",
                    path.display()
                )
            })?;
        }
        // The control socket logs the edit with who asked for it.
        tracing::debug!(
            verb = verb.name(),
            generation = next.generation,
            "table edited"
        );
        let max_conns = next.settings().max_conns;
        let max_conns_changed = max_conns != current.settings().max_conns;
        self.table.store(Arc::new(next));
        self.workers.commit(pending);
        if max_conns_changed {
            crate::descriptors::log_limit(max_conns);
        }
        if let (Verb::Load { source, text }, Some(reload)) = (verb, &self.reload) {
            reload.after_load(source, text);
        }
        Ok(())
    }

    /// `-Z`: listings count from now on; the counters themselves (and so
    /// /metrics) go on growing.
    fn zero(&self, ident: Option<&str>) -> Result<(), String> {
        let table = self.table.load();
        if let Some(ident) = ident {
            find(&table, ident)?;
        }
        let now = traffic::snapshot(&table, &self.workers);
        self.traffic
            .zero(now, |(service, _)| ident.is_none_or(|i| i == service));
        Ok(())
    }

    /// The table with live counters, optionally one service only.
    pub fn view(&self, ident: Option<&str>) -> Result<TableView, String> {
        let table = self.table.load();
        let listening = self.workers.listening();
        let services: Vec<_> = match ident {
            Some(ident) => vec![find(&table, ident)?],
            None => table.services.iter().collect(),
        };
        let counted = self
            .traffic
            .since_zero(&traffic::snapshot(&table, &self.workers));
        let rates = self.traffic.rates();
        let services = services
            .into_iter()
            .filter_map(|service| {
                let spec = table
                    .spec
                    .services
                    .iter()
                    .find(|s| s.ident == service.ident)?;
                let mut view = ServiceView::of(spec);
                view.bound = listening.get(&service.ident).map(ToString::to_string);
                live_counters(&mut view, service);
                traffic_counters(&mut view, &counted, &rates);
                Some(view)
            })
            .collect();
        Ok(TableView {
            generation: table.generation,
            services,
            log_dropped: crate::daemon::logging::dropped_lines(),
        })
    }
}

/// The table an editing verb makes of `current`, built but not yet bound or
/// swapped in: the whole of an edit that is decided without I/O.
pub fn next_table(current: &Table, verb: &Verb) -> Result<Table, String> {
    next_table_with(current, verb, |_| {})
}

/// [`next_table`], with `adjust` applied to the edited spec before it is
/// built.
fn next_table_with(
    current: &Table,
    verb: &Verb,
    adjust: impl FnOnce(&mut TableSpec),
) -> Result<Table, String> {
    let mut spec = current.spec.clone();
    verb.apply_with(&mut spec, &crate::resolve::Logged::ONCE)
        .map_err(|e| e.to_string())?;
    adjust(&mut spec);
    Table::build(spec, Some(current)).map_err(|(_, e)| e.to_string())
}

/// Adds what the running `service` knows to its view: RTSP sessions,
/// connections, and each server's active requests and health (the view
/// lists the servers in the service's order).
fn live_counters(view: &mut ServiceView, service: &Service) {
    view.sessions = service
        .sessions
        .as_ref()
        .map(|t| t.len(std::time::Instant::now()) as u64);
    view.conns = u64::from(service.state.conns.held());
    view.queued = u64::from(service.state.queued.held());
    for (server, live) in view.servers.iter_mut().zip(&service.servers) {
        server.active = live.state.active();
        server.health = verdict::health_label(live);
        server.last_check = live.state.last_check();
        server.effective_weight = if live.takes_new_work() {
            u32::from(live.effective_weight().0)
        } else {
            0
        };
    }
}

/// Adds the traffic since `-Z` and its rates to the view of a service and
/// its servers: the service's totals are its servers' and its own (the
/// requests no server got).
fn traffic_counters(
    view: &mut ServiceView,
    counted: &Snapshot,
    rates: &BTreeMap<traffic::Key, RateView>,
) {
    let mut total = traffic::Counts::default();
    let mut total_rate = RateView::default();
    let mut add = |key: &traffic::Key| {
        let counts = counted.get(key).copied().unwrap_or_default();
        let rate = rates.get(key).copied().unwrap_or_default();
        total.add(&counts);
        total_rate += rate;
        (counts, rate)
    };
    for server in &mut view.servers {
        let Ok(addr) = server.address.parse() else {
            continue;
        };
        let (counts, rate) = add(&(view.ident.clone(), Some(ServerAddr(addr))));
        server.requests = counts.sent;
        server.failures = counts.failures;
        server.stats = counts.view();
        server.rate = rate;
    }
    add(&(view.ident.clone(), None));
    view.retried = total.retried;
    view.stats = total.view();
    view.rate = total_rate;
}

fn find<'a>(table: &'a Table, ident: &str) -> Result<&'a Arc<Service>, String> {
    table
        .services
        .iter()
        .find(|s| s.ident.as_str() == ident)
        .ok_or_else(|| format!("no service `{ident}`"))
}
