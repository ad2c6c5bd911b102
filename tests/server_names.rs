//! Real servers given by host name: resolved when the file loads (and
//! refused at `--check` when they do not resolve), served, listed and saved
//! by their name. Moving a server when its name changes address is tested
//! with a resolver the test controls, in `src/resolve.rs`.

mod common;

use common::daemon::{tcpvsd_exit, Daemon, Scratch};
use common::{get, TestServer};

#[test]
fn a_server_named_localhost_serves_and_is_listed_and_saved_by_name() {
    let app = TestServer::named("app");
    let named = format!("localhost:{}", app.addr.port());
    let dir = Scratch::new("server-names");
    let state = dir.path().join("state.toml");
    let config = format!(
        "state_file = \"{state}\"\n\
         resolve_interval = \"1s\"\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         default = [\"{named}\"]\n\
         [[service.server]]\naddress = \"{named}\"\nweight = 3\n\
         [[service.rule]]\npattern = \"^/app/\"\nservers = [\"{named}\"]\n",
        state = state.display()
    );
    let daemon = Daemon::with_config_in(dir, &config, &[]);
    let web = daemon.bound("web");
    for path in ["/", "/app/x"] {
        assert_eq!(get(web, path).text(), "app", "{path}");
    }
    // The JSON listing has both: where tcpvsd connects and the name.
    let listing = daemon.control(r#"{"id":1,"verb":"list"}"#);
    let shown = format!(r#""address":"{}","host":"{named}","#, app.addr);
    assert!(listing.contains(&shown), "{shown} not in {listing}");
    // Edits name it by its name too; the state file keeps the name.
    let edit =
        format!(r#"{{"id":2,"verb":"edit-server","ident":"web","server":"{named}","weight":5}}"#);
    assert!(daemon.control(&edit).contains(r#""ok":true"#));
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(
        saved.contains(&format!("address = \"{named}\"\nweight = 5\n")),
        "{saved}"
    );
    assert!(!saved.contains(&app.addr.to_string()), "{saved}");
    // Lookups every second change nothing while the name stays put.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(get(web, "/app/y").text(), "app");
}

#[test]
fn a_name_that_does_not_resolve_is_refused_at_check() {
    let dir = Scratch::new("server-names-check");
    let file = dir.write(
        "tcpvsd.toml",
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"backend.invalid:8080\"\n",
    );
    let output = tcpvsd_exit(&["--config".as_ref(), file.as_os_str(), "--check".as_ref()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = "tcpvsd.toml:5: service[0].server[0].address: cannot resolve server \
                    `backend.invalid:8080`";
    assert!(stderr.contains(expected), "{stderr}");
}
