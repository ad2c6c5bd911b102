//! The TOML configuration (tcpvsd --config, tcpvsadm -f, SIGHUP): any text is
//! refused with a located error or gives a table; a table that builds is
//! saved in the state file's form, which loads back to the same services.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tcpvs::table::Table;
use tcpvs_command::config::{parse_with, services_to_toml};
use tcpvs_command::resolve::Offline;

/// Server names resolve without a lookup: a DNS server out of reach would
/// make an input take seconds.
const OFFLINE: Offline = Offline;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = parse_with(text, Path::new("fuzz.toml"), &OFFLINE) else {
        return;
    };
    let Ok(table) = Table::build(config.table, None) else {
        return;
    };
    let saved = services_to_toml(&table.spec.services);
    match parse_with(&saved, Path::new("state.toml"), &OFFLINE) {
        Ok(loaded) => assert_eq!(loaded.table.services, table.spec.services, "{saved}"),
        Err(e) => panic!("the state file does not load: {e}\n{saved}"),
    }
});
