//! The control socket's request line (what tcpvsadm sends and tcpvsd parses)
//! and the verb it carries, applied to a table as the control plane applies
//! it.
//!
//! A request that parses is written back (as tcpvsadm writes it) to a line
//! that parses to the same request. A verb the daemon accepts leaves a table
//! that its state file, written and loaded again at the next start, gives
//! back unchanged.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tcpvs::table::Table;
use tcpvs_command::config::{parse_with, services_to_toml};
use tcpvs_command::resolve::Offline;
use tcpvs_command::Request;

/// The table the verbs edit: the example configuration, with services,
/// servers, rules and a default set for them to find, add to and remove.
const TABLE: &str = include_str!("../../examples/tcpvsd.toml");

fn current() -> &'static Table {
    static CURRENT: OnceLock<Table> = OnceLock::new();
    CURRENT.get_or_init(|| {
        let config =
            parse_with(TABLE, Path::new("tcpvsd.toml"), &OFFLINE).expect("the example parses");
        Table::build(config.table, None).expect("the example builds")
    })
}

/// Server names resolve without a lookup: a DNS server out of reach would
/// make an input take seconds.
const OFFLINE: Offline = Offline;

fuzz_target!(|line: &[u8]| {
    // The id of a refused line is still read, for the error reply.
    Request::id_of(line);
    let Ok(request) = serde_json::from_slice::<Request>(line) else {
        return;
    };
    let written = request.to_line();
    match serde_json::from_slice::<Request>(&written) {
        Ok(again) => assert_eq!(again, request, "{}", String::from_utf8_lossy(&written)),
        Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&written)),
    }
    if !request.verb.edits() {
        return;
    }
    // As the control plane's `next_table`: apply to a copy, then build.
    let current = current();
    let mut spec = current.spec.clone();
    if request.verb.apply_with(&mut spec, &OFFLINE).is_err() {
        return;
    }
    let Ok(next) = Table::build(spec, Some(current)) else {
        return;
    };
    let saved = services_to_toml(&next.spec.services);
    match parse_with(&saved, Path::new("state.toml"), &OFFLINE) {
        Ok(loaded) => assert_eq!(loaded.table.services, next.spec.services, "{saved}"),
        Err(e) => panic!("the state file does not load: {e}\n{saved}"),
    }
});
