//! tcpvsadm's command line on its own: usage errors exit 2, as ipvsadm, with
//! clap's message and usage line; an unreachable daemon exits 1. (Edits against a running tcpvsd are
//! tested in the workspace's tests/tcpvsadm.rs; this package's test also makes
//! `cargo test --workspace` build the tcpvsadm binary those tests drive.)

use std::process::Command;

fn tcpvsadm(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tcpvsadm"))
        .args(args)
        .output()
        .expect("run tcpvsadm");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    for (args, message) in [
        (
            &["-a", "-i", "web", "-r", "10.0.0.1:80", "-w", "70000"][..],
            "0 to 65535",
        ),
        (&["-A", "-i", "web"][..], "-A needs -l address"),
        (
            &["--frobnicate"][..],
            "unexpected argument '--frobnicate' found",
        ),
        (&[][..], "no command given"),
        (
            &["-L", "-A"][..],
            "the argument '--list' cannot be used with '--add-service'",
        ),
    ] {
        let (code, _, stderr) = tcpvsadm(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{args:?}: {stderr}");
        assert!(first.contains(message), "{args:?}: {stderr}");
        assert!(
            stderr.contains("\nUsage: tcpvsadm COMMAND"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.lines().count() < 10, "{args:?}: {stderr}");
    }
}

#[test]
fn help_and_unreachable_daemon() {
    let (code, stdout, _) = tcpvsadm(&["-h"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("--add-rule -i ident [-p pattern] [--host regex]"));
    let (code, _, stderr) = tcpvsadm(&["--socket", "/nonexistent/x.sock", "-L"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("/nonexistent/x.sock: no tcpvsd is listening there"),
        "{stderr}"
    );
}
