//! The TOML configuration (tcpvsd --config, tcpvsadm -f, SIGHUP): any text is
//! refused with a located error or gives a table; a table that builds is
//! saved in the state file's form, which loads back to the same services.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tcpvs::table::Table;
use tcpvs_command::config::{parse, services_to_toml};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    let Ok(table) = Table::build(config.table, None) else {
        return;
    };
    let saved = services_to_toml(&table.spec.services);
    match parse(&saved, Path::new("state.toml")) {
        Ok(loaded) => assert_eq!(loaded.table.services, table.spec.services, "{saved}"),
        Err(e) => panic!("the state file does not load: {e}\n{saved}"),
    }
});
