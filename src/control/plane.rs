//! Where a verb becomes a new table. Edits are serialized; each builds a new
//! immutable table from the current one (regexes compiled here, on the
//! control thread, never on a worker), binds the listeners it needs, saves the
//! state file, and only then swaps the table in. Any failure leaves the
//! running table exactly as it was.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use super::command::{RuleView, ServerView, ServiceView, TableView, Verb};
use crate::state_file;
use crate::table::Table;
use crate::worker::Workers;

/// The running daemon as the control socket sees it.
pub struct ControlPlane {
    table: Arc<ArcSwap<Table>>,
    workers: Arc<Workers>,
    state_file: Option<PathBuf>,
    edits: Mutex<()>,
}

impl ControlPlane {
    pub fn new(
        table: Arc<ArcSwap<Table>>,
        workers: Arc<Workers>,
        state_file: Option<PathBuf>,
    ) -> Self {
        Self {
            table,
            workers,
            state_file,
            edits: Mutex::new(()),
        }
    }

    /// Carries out one verb: `Ok(Some(view))` for a listing.
    pub fn handle(&self, verb: &Verb) -> Result<Option<TableView>, String> {
        match verb {
            Verb::List { ident } => self.view(ident.as_deref()).map(Some),
            Verb::Zero { ident } => self.zero(ident.as_deref()).map(|()| None),
            _ => self.edit(verb).map(|()| None),
        }
    }

    fn edit(&self, verb: &Verb) -> Result<(), String> {
        let _one_at_a_time = self.edits.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.table.load_full();
        let mut spec = current.spec.clone();
        verb.apply(&mut spec).map_err(|e| e.to_string())?;
        let next = Table::build(spec, Some(&current)).map_err(|(_, e)| e.to_string())?;
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
        tracing::info!(
            verb = verb.name(),
            generation = next.generation,
            "table edited"
        );
        self.table.store(Arc::new(next));
        self.workers.commit(pending);
        Ok(())
    }

    fn zero(&self, ident: Option<&str>) -> Result<(), String> {
        let table = self.table.load();
        let services: Vec<_> = match ident {
            Some(ident) => vec![find(&table, ident)?],
            None => table.services.iter().collect(),
        };
        for server in services.iter().flat_map(|s| &s.servers) {
            server.state.zero();
        }
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
        let addrs = |list: &[Arc<crate::table::RealServer>]| {
            list.iter().map(|s| s.addr.to_string()).collect()
        };
        let services = services
            .into_iter()
            .map(|service| {
                let spec = table
                    .spec
                    .services
                    .iter()
                    .find(|s| s.ident == service.ident);
                ServiceView {
                    ident: service.ident.to_string(),
                    listen: service.listen.to_string(),
                    bound: listening.get(&service.ident).map(ToString::to_string),
                    protocol: service.protocol.to_string(),
                    scheduler: service.scheduler.kind().to_string(),
                    sched_opts: service.sched_opts.clone(),
                    enabled: service.enabled,
                    persistent: service.persistence.as_ref().map(|p| p.timeout().as_secs()),
                    forwarded_proto: service.forwarded_proto.clone(),
                    sessions: service
                        .sessions
                        .as_ref()
                        .map(|t| t.len(std::time::Instant::now()) as u64),
                    servers: service
                        .servers
                        .iter()
                        .map(|s| ServerView {
                            address: s.addr.to_string(),
                            weight: s.weight.0,
                            active: s.state.active(),
                            requests: s.state.requests(),
                            failures: s.state.failures(),
                        })
                        .collect(),
                    rules: service
                        .rules
                        .iter()
                        .map(|r| RuleView {
                            pattern: r.pattern.as_str().to_string(),
                            servers: addrs(&r.servers),
                            match_group: r.match_group,
                        })
                        .collect(),
                    default: spec
                        .and_then(|s| s.default.as_ref())
                        .map(|set| set.iter().map(ToString::to_string).collect()),
                }
            })
            .collect();
        Ok(TableView {
            generation: table.generation,
            services,
        })
    }
}

fn find<'a>(table: &'a Table, ident: &str) -> Result<&'a Arc<crate::table::Service>, String> {
    table
        .services
        .iter()
        .find(|s| s.ident.as_str() == ident)
        .ok_or_else(|| format!("no service `{ident}`"))
}
